/// Connects to the socket the way Postfix does and checks the greeting; its MECH lines are what the
/// mechanism and TLS checks reason about.
struct GreetingCheck {
    let environment: any DoctorEnvironment
    let configPath: String
    let daemon: DaemonSocket
    let timeout: Duration

    /// The finding, and the advertised mechanisms when the greeting was usable.
    func run(_ path: String) -> (finding: DoctorFinding, mechanisms: [DoctorMechanism]?) {
        switch environment.greeting(socketPath: path, timeout: timeout) {
        case .success(let greeting):
            let finding = DoctorFinding.ok(
                "\(path) answers like Dovecot's auth-client socket: VERSION \(greeting.major) \(greeting.minor), MECH \(greeting.mechanisms.isEmpty ? "(none)" : greeting.mechanisms.map(\.description).joined(separator: " ")), DONE"
            )
            return (finding, greeting.mechanisms)
        case .failure(let error):
            if error.description.contains("permission denied") && environment.effectiveUID != 0 {
                let finding = DoctorFinding.warning(
                    "cannot connect to \(path) as uid \(environment.effectiveUID): \(error)",
                    fix: "run saslgate doctor as root")
                return (finding, nil)
            }
            let finding = DoctorFinding.fail(
                "no usable greeting from \(path): \(error)",
                fix:
                    "is saslgated running and is this its socket? (\(daemon.startCommand(configPath: configPath)); journalctl -u saslgated)"
            )
            return (finding, nil)
        }
    }
}

/// The mechanisms the checks reason about: those the daemon advertised, or, when it did not answer,
/// those its configuration names, with the flags it would give them.
struct MechanismList {
    var mechanisms: [DoctorMechanism]
    /// Where they come from, for messages.
    var source: String

    init(advertised: [DoctorMechanism]?, configured: [String], configPath: String) {
        mechanisms = advertised ?? configured.map(DoctorMechanism.predicted)
        source =
            advertised == nil
            ? "predicted from 'mechanisms' in \(configPath), the daemon did not answer" : "as advertised"
    }
}

/// The two parameters that filter mechanisms by their flags: on connections before TLS, and after.
enum SecurityOptionsParameter: String {
    case beforeTLS = "smtpd_sasl_security_options"
    case afterTLS = "smtpd_sasl_tls_security_options"
}

/// What one smtpd makes of the advertised mechanisms: `smtpd_sasl_security_options` before TLS,
/// `smtpd_sasl_tls_security_options` after, then `smtpd_sasl_mechanism_filter` (see DoctorMechanisms.swift).
/// A phase where AUTH is offered but no mechanism survives kills smtpd when a client connects.
struct MechanismCheck {
    let configPath: String
    let postconf: PostconfFix

    /// The findings, and the security options that need resetting.
    func run(
        _ service: SMTPDService, tls: PostfixTLSPosture, offered: MechanismList
    ) -> (findings: [DoctorFinding], broken: Set<SecurityOptionsParameter>) {
        let mechanisms = offered.mechanisms
        if mechanisms.isEmpty {
            let finding = DoctorFinding.fail(
                "saslgated advertises no mechanism: Postfix stops with 'fatal: no SASL authentication mechanisms'",
                fix: "'saslgated -c \(configPath) --check' shows which mechanisms the passdbs can serve")
            return ([finding], [])
        }
        var findings: [DoctorFinding] = []
        var broken: Set<SecurityOptionsParameter> = []
        let filter = PostfixMechanismFilter(
            service.has("smtpd_sasl_mechanism_filter") ? service.value("smtpd_sasl_mechanism_filter") : nil)
        if !filter.unevaluable.isEmpty {
            findings.append(
                .warning(
                    "smtpd_sasl_mechanism_filter uses \(filter.unevaluable.joined(separator: ", ")), which this check cannot look into; assumed to keep every mechanism",
                    fix: "check it by hand"))
        }

        /// The mechanisms offered in one phase; nil when none survives (the finding says why).
        func phase(_ parameter: SecurityOptionsParameter, _ name: String) -> [DoctorMechanism]? {
            switch survivors(service, parameter, phase: name, offered: offered, filter: filter) {
            case .offered(let kept):
                return kept
            case .nothingLeft(let finding, let optionsBroken):
                findings.append(finding)
                if optionsBroken { broken.insert(parameter) }
                return nil
            }
        }
        var before: [DoctorMechanism]? = nil
        var after: [DoctorMechanism]? = nil
        var okBefore = true
        var okAfter = true
        if tls.authBeforeTLS {
            before = phase(.beforeTLS, tls.tlsPossible ? "before STARTTLS" : "without TLS")
            okBefore = before != nil
        }
        if tls.authAfterTLS {
            after = phase(.afterTLS, tls.wrapperMode ? "over TLS" : "after STARTTLS")
            okAfter = after != nil
        }
        if okBefore && okAfter && (before != nil || after != nil) {
            var parts: [String] = []
            if let before {
                parts.append(
                    "\(tls.tlsPossible ? "before STARTTLS" : "without TLS"): \(before.map(\.name).joined(separator: " "))"
                )
            } else if tls.tlsPossible && !tls.wrapperMode {
                parts.append(
                    "before STARTTLS: none (\(tls.authOnly ? "smtpd_tls_auth_only = yes" : "smtpd_tls_security_level = \(tls.level)"))"
                )
            }
            if let after {
                parts.append(
                    "\(tls.wrapperMode ? "over TLS" : "after STARTTLS"): \(after.map(\.name).joined(separator: " "))")
            }
            findings.append(.ok("Postfix offers AUTH \(parts.joined(separator: "; ")) (\(offered.source))"))
        }
        return (findings, broken)
    }

    private enum Phase {
        case offered([DoctorMechanism])
        /// `optionsBroken`: the security options themselves are at fault (not only the name filter).
        case nothingLeft(DoctorFinding, optionsBroken: Bool)
    }

    /// Runs the mechanisms through one phase's security options and the name filter.
    private func survivors(
        _ service: SMTPDService, _ parameter: SecurityOptionsParameter, phase: String, offered: MechanismList,
        filter: PostfixMechanismFilter
    ) -> Phase {
        let name = parameter.rawValue
        let mechanisms = offered.mechanisms
        let options = PostfixSASLSecurityOptions(service.value(name))
        if !options.unknown.isEmpty {
            let finding = DoctorFinding.fail(
                "\(name) = \(options) has unknown word(s) \(options.unknown.joined(separator: ", ")): smtpd stops with a fatal error",
                fix: "use only noanonymous, noplaintext, noactive, nodictionary, mutual_auth, forward_secrecy: "
                    + postconf.set(name, "noanonymous", for: service))
            return .nothingLeft(finding, optionsBroken: true)
        }
        let afterOptions = options.filter(mechanisms)
        let kept = filter.filter(afterOptions)
        guard kept.isEmpty else { return .offered(kept) }

        var reasons = mechanisms.compactMap { m in options.rejection(of: m).map { "\(m.name): \($0)" } }
        let filtered = afterOptions.filter { !filter.keeps($0.name) }.map(\.name)
        if !filtered.isEmpty {
            reasons.append("smtpd_sasl_mechanism_filter drops \(filtered.joined(separator: " "))")
        }
        let fix: String
        if afterOptions.isEmpty {
            let plaintextOnly = mechanisms.allSatisfy(\.isPlaintext)
            fix =
                postconf.set(name, "noanonymous", for: service)
                + (plaintextOnly && parameter == .beforeTLS
                    ? " and keep PLAIN/LOGIN under TLS with " + postconf.set("smtpd_tls_auth_only", "yes", for: service)
                    : "")
                + (plaintextOnly
                    ? ", or offer a mechanism without the plaintext flag (e.g. mechanisms = plain login cram-md5 with a passwd-file that stores {CRAM-MD5} or {PLAIN})"
                    : "")
        } else {
            fix = postconf.set("smtpd_sasl_mechanism_filter", PostfixMechanismFilter.postfixDefault, for: service)
        }
        let fatal =
            afterOptions.isEmpty
            ? "no SASL authentication mechanisms"
            : "smtpd_sasl_mechanism_filter discards all mechanisms in '\(afterOptions.map(\.name).joined(separator: " "))'"
        let survives =
            afterOptions.isEmpty
            ? "\(name) = \(options)"
            : "\(name) = \(options) and smtpd_sasl_mechanism_filter = \(service.value("smtpd_sasl_mechanism_filter"))"
        let finding = DoctorFinding.fail(
            "\(phase) no mechanism survives \(survives) (saslgated offers \(mechanisms.map(\.description).joined(separator: " ")), \(offered.source); \(reasons.joined(separator: "; "))): smtpd stops with \"fatal: \(fatal)\" when a client connects",
            fix: fix)
        return .nothingLeft(finding, optionsBroken: afterOptions.isEmpty)
    }
}
