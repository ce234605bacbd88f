import AuthConfig

/// Where one smtpd looks for the auth socket.
struct SASLPathResult {
    var findings: [DoctorFinding]
    /// The socket smtpd opens, as seen from outside any chroot (the daemon's own path when smtpd
    /// connects over TCP: there is no file to look at then, but the daemon's socket can still be checked).
    var socketPath: String
    /// `queue_directory` when smtpd runs chrooted in it.
    var chrootRoot: String?
}

/// Does smtpd ask saslgated, and at the right place: `smtpd_sasl_type`, then `smtpd_sasl_path` resolved the
/// way smtpd resolves it (relative to `queue_directory`, and inside it when smtpd is chrooted) against
/// the socket the daemon really serves.
struct SASLPathCheck {
    let daemon: DaemonSocket
    let queueDirectory: String
    let compatibilityLevel: String
    let configPath: String
    let postconf: PostconfFix

    func run(_ service: SMTPDService) -> SASLPathResult {
        var findings = [typeFinding(service)]

        let chrooted =
            service.master.map {
                PostfixChroot.isChrooted(column: $0.chrootColumn, compatibilityLevel: compatibilityLevel)
            } ?? false
        let chrootWhy =
            service.master.map {
                "smtpd \(chrooted ? "chrooted in \(queueDirectory)" : "not chrooted"): \(PostfixChroot.explanation(column: $0.chrootColumn, compatibilityLevel: compatibilityLevel))"
            } ?? "smtpd assumed not chrooted"
        let configured = service.value("smtpd_sasl_path")
        let sasl = PostfixSASLPath.resolve(configured, queueDirectory: queueDirectory, chrooted: chrooted)
        let relativeDaemon = doctorRelativePath(daemon.path, inside: queueDirectory)
        let fix = pathFix(service, chrooted: chrooted, relativeDaemon: relativeDaemon)
        var socketPath = daemon.path
        switch sasl.target {
        case .inet(let address):
            if case .success(let endpoint) = ListenEndpoint.parse("inet:" + address), daemon.inetEndpoints.contains(endpoint) {
                // What Postfix reaches is this endpoint: its greeting is probed (TCP works chrooted too).
                socketPath = endpoint.description
                findings.append(
                    .ok(
                        "Postfix connects over TCP to \(address) (smtpd_sasl_path = \(configured)), where saslgated listens; inet_clients must include this Postfix host, and the network must be private (Postfix sends the passwords there unencrypted)"
                    ))
            } else if daemon.inetEndpoints.isEmpty {
                findings.append(
                    .fail(
                        "smtpd_sasl_path = \(configured) makes Postfix connect over TCP to \(address), but saslgated only listens on a Unix socket (\(daemon.path))",
                        fix: fix + ", or add inet:\(address) to listen in \(configPath)"))
            } else {
                findings.append(
                    .fail(
                        "smtpd_sasl_path = \(configured) makes Postfix connect over TCP to \(address), but saslgated listens on \(daemon.inetEndpoints.map(\.description).joined(separator: " ")) (and \(daemon.path))",
                        fix: fix + ", or add inet:\(address) to listen in \(configPath)"))
            }
        case .unix(let hostPath):
            socketPath = hostPath
            let shown = "smtpd_sasl_path = \(configured.isEmpty ? "(empty)" : configured)"
            if sasl.absoluteInChroot {
                findings.append(
                    .fail(
                        "\(shown) is absolute, but \(chrootWhy); inside the chroot it opens \(hostPath), not \(doctorNormalizePath(configured.hasPrefix("unix:") ? String(configured.dropFirst(5)) : configured))",
                        fix: fix
                            + (relativeDaemon == nil
                                ? "" : ", or set the chroot column of \(service.master?.id ?? "smtpd") to n")))
            } else if hostPath != daemon.path {
                findings.append(
                    .fail(
                        "Postfix connects to \(hostPath) (\(shown)\(sasl.isRelative ? ", relative to queue_directory = \(queueDirectory)" : "")), but saslgated listens on \(daemon.path) (\(daemon.source))",
                        fix: fix))
            } else {
                findings.append(
                    .ok(
                        "Postfix connects to \(hostPath) (\(shown)\(sasl.isRelative ? ", relative to queue_directory" : ""); \(chrootWhy)), where saslgated listens (\(daemon.source))"
                    ))
            }
        }
        return SASLPathResult(
            findings: findings, socketPath: socketPath,
            chrootRoot: chrooted && !socketPath.hasPrefix("inet:") ? queueDirectory : nil)
    }

    private func typeFinding(_ service: SMTPDService) -> DoctorFinding {
        let type = service.value("smtpd_sasl_type")
        if type.lowercased() == "dovecot" { return .ok("smtpd_sasl_type = dovecot") }
        let what = type.lowercased() == "cyrus" ? "the Cyrus SASL library (saslauthd, sasldb)" : "'\(type)'"
        return .fail(
            "smtpd_sasl_type = \(type.isEmpty ? "(empty)" : type): Postfix asks \(what), not saslgated",
            fix: postconf.set("smtpd_sasl_type", "dovecot", for: service))
    }

    /// The path to configure: relative to `queue_directory` when the daemon's socket lies inside it,
    /// which works chrooted or not; a chrooted smtpd cannot reach a socket anywhere else.
    private func pathFix(_ service: SMTPDService, chrooted: Bool, relativeDaemon: String?) -> String {
        if let relativeDaemon {
            return postconf.set("smtpd_sasl_path", relativeDaemon, for: service)
                + " (relative to queue_directory = \(queueDirectory))"
        }
        if chrooted {
            return
                "a chrooted smtpd only reaches sockets below \(queueDirectory): set listen = \(queueDirectory)/private/auth in \(configPath)\(daemon.fromSystemd ? " and ListenStream= in saslgated.socket" : ""), then "
                + postconf.set("smtpd_sasl_path", "private/auth", for: service)
        }
        return postconf.set("smtpd_sasl_path", daemon.path, for: service)
    }
}
