import AuthCore

extension Settings {
    /// Every key of the configuration file, in the order `conf/saslgated.conf` documents them: name,
    /// default (as written in the file), check and one-line summary. A test holds the example file to
    /// this table.
    public static let keys: [ConfigKey] = [
        // Where Postfix finds us
        ConfigKey("listen", default: "/var/spool/postfix/private/auth",
                  "the socket paths and inet:HOST:PORT addresses to listen on") { v, s, context in
            let (endpoints, problems) = ListenEndpoint.parseList(v, resolve: context.resolve)
            s.listen = endpoints
            return problems
        },
        ConfigKey("listen_mode", default: "0660", "the socket's file mode (octal)") { v, s, _ in
            guard let mode = UInt32(v, radix: 8), mode <= 0o777 else {
                return ["listen_mode '\(v)' is not an octal mode like 0660"]
            }
            s.listenMode = mode
            return []
        },
        .optionalText("listen_user", \.listenUser, default: "postfix", "the socket's owner (empty: as created)"),
        .optionalText("listen_group", \.listenGroup, default: "postfix", "the socket's group (empty: as created)"),
        ConfigKey("inet_clients", default: "127.0.0.0/8 ::1/128", "the networks that may connect to inet: endpoints") { v, s, _ in
            let words = words(v)
            s.inetClients = words.compactMap { CIDR($0) }
            return words.filter { CIDR($0) == nil }.map {
                "inet_clients: '\($0)' is not an address or network like 10.0.0.0/24 or 2001:db8::/32"
            }
        },
        .optionalPath("inet_tls_cert", \.inetTlsCert, default: "", "the PEM certificate chain for TLS on inet: endpoints"),
        .optionalPath("inet_tls_key", \.inetTlsKey, default: "", "the PEM private key of inet_tls_cert"),

        // What we offer
        ConfigKey("mechanisms", default: "plain login", "the SASL mechanisms to advertise, in order") { v, s, _ in
            s.mechanisms = words(v).map { $0.uppercased() }
            var problems: [String] = []
            if s.mechanisms.isEmpty { problems.append("mechanisms is empty; list at least one, e.g. 'plain login'") }
            var seen = Set<String>()
            for name in s.mechanisms where !seen.insert(name).inserted {
                problems.append("mechanism \(name) is listed twice")
            }
            return problems
        },
        ConfigKey("passdbs", default: "passwd-file:/etc/saslgate/users", "the password databases, asked in order") { v, s, context in
            let (specs, problems) = PassdbSpec.parseList(
                v, line: context.line, drivers: context.passdbDrivers, resolve: context.resolve)
            s.passdbs = specs
            if specs.isEmpty && problems.isEmpty {
                let example = context.passdbDrivers?.drivers.first?.example ?? "driver:argument"
                return ["passdbs is empty; list at least one, e.g. 'passdbs = \(example)'"]
            }
            return problems
        },
        ConfigKey("default_realm", default: "", "the realm of logins without '@'") { v, s, _ in
            s.defaultRealm = v.isEmpty ? nil : v.lowercased()
            guard !v.contains("@"), !v.contains(where: { $0.isWhitespace }) else {
                return ["default_realm '\(v)' must be a bare domain like example.org"]
            }
            return []
        },
        ConfigKey("realms", default: "", "the realms accepted (empty: any)") { v, s, _ in
            s.realms = words(v).map { $0.lowercased() }
            return s.realms.filter { $0.contains("@") }.map { "realm '\($0)' must be a bare domain like example.org" }
        },
        .flag("username_lowercase", \.usernameLowercase, default: "yes", "lower-case login names before any lookup"),
        ConfigKey("username_chars", default: defaultUsernameChars, "the characters allowed in login names") { v, s, _ in
            guard !v.contains(":"), !v.contains(" "), !v.contains("/") else {
                return ["username_chars may not contain ':', '/' or spaces (they would break passdb lookups)"]
            }
            s.usernameChars = v
            return []
        },

        // Policy
        .flag("cleartext_requires_tls", \.cleartextRequiresTLS, default: "yes", "PLAIN and LOGIN only over TLS"),
        .duration("failure_delay", \.failureDelay, default: "2s", in: 0...5, why: "Postfix gives up after 10s",
                  "the delay before a failure is answered"),

        ConfigKey("require_app_passwords", default: "no", "refuse the main password for SMTP: yes, no or realms") { v, s, _ in
            let (requirement, problems) = AppPasswordRequirement.parse(v)
            s.requireAppPasswords = requirement
            return problems
        },
        ConfigKey("rehash_schemes", default: "", "store a fresh hash after a login verified a weak one (SOURCES -> TARGET)") { v, s, _ in
            let (schemes, problems) = RehashSchemes.parse(v)
            s.rehashSchemes = schemes
            return problems
        },

        // Auth cache
        .number("auth_cache_size", \.authCacheSize, default: "0", in: 0...10_000_000, why: "0: no cache",
                "the number of cached verification results"),
        .duration("auth_cache_ttl", \.authCacheTTL, default: "1h", in: 0...(86400 * 7), "how long a cached success lasts"),
        .duration("auth_cache_negative_ttl", \.authCacheNegativeTTL, default: "1h", in: 0...(86400 * 7),
                  "how long a cached failure lasts"),

        // Limits
        .duration("request_timeout", \.requestTimeout, default: "150s", in: 1...3600, "when an unfinished request is dropped"),
        .number("max_connections", \.maxConnections, default: "16384", in: 1...1_000_000, "the client connections served at once"),
        .number("max_pending_requests", \.maxPendingRequests, default: "1024", in: 1...65536,
                "the unfinished requests on one connection"),
        .number("hash_threads", \.hashThreads, default: "0", in: 0...256, why: "0: one per core",
                "the threads that hash passwords and run blocking passdbs"),
        .number("event_loops", \.eventLoops, default: "0", in: 0...256, why: "0: one per core",
                "the threads that serve client connections"),
        .duration("handshake_timeout", \.handshakeTimeout, default: "30s", in: 1...600,
                  "how long a client may take to send VERSION and CPID"),

        // Running
        .optionalText("run_user", \.runUser, default: "saslgate", "the user to run as once the socket is bound"),
        .duration("shutdown_timeout", \.shutdownTimeout, default: "10s", in: 0...300,
                  "how long in-flight requests may take after SIGTERM"),
        .words("client_allowlist", \.clientAllowlist, default: "", "the users, @groups and uids that may connect"),
        .optionalPath("control_socket", \.controlSocket, default: "/run/saslgate/control",
                      "the socket of 'saslgate stats' and 'saslgate penalty'"),

        // Brute-force control
        .duration("penalty_max_delay", \.penaltyMaxDelay, default: "5s", in: 0...8,
                  why: "Postfix gives up after 10s and answers 454", "the longest escalated failure delay"),
        .number("penalty_block_after", \.penaltyBlockAfter, default: "10", in: 1...100_000, "the failures before a cool-down"),
        .duration("penalty_cooldown", \.penaltyCooldown, default: "10m", in: 0...86400, why: "0 disables cool-downs",
                  "how long a cool-down lasts"),
        .duration("penalty_window", \.penaltyWindow, default: "15m", in: 1...86400, "how long a failure is remembered"),
        .number("penalty_max_entries", \.penaltyMaxEntries, default: "100000", in: 100...10_000_000,
                "the most IPs, users and pairs the penalty table holds"),
        ConfigKey("trusted_networks", default: "", "the client networks exempt from penalties") { v, s, _ in
            s.trustedNetworks = words(v)
            return s.trustedNetworks.filter { !isCIDR($0) }.map {
                "trusted_networks: '\($0)' is not an address or network like 192.0.2.0/24 or 2001:db8::/32"
            }
        },

        // Who may act for whom
        ConfigKey("authz_rules", default: "", "who may act as someone else (AUTHCID=>AUTHZID)") { v, s, _ in
            let (rules, problems) = AuthzRule.parseList(v)
            s.authzRules = rules
            return problems
        },
        .optionalText("anonymous_username", \.anonymousUsername, default: "", "the user an ANONYMOUS login becomes"),

        // Logging
        ConfigKey("log_level", default: "info", "debug, info, notice, warning or error") { v, s, _ in
            let level = v.lowercased()
            guard ["debug", "info", "notice", "warning", "error"].contains(level) else {
                return ["log_level '\(v)' must be debug, info, notice, warning or error"]
            }
            s.logLevel = level
            return []
        },
        .text("hostname", \.hostname, default: "", "the host name in CRAM-MD5 challenges (empty: the system's)"),
    ]
}
