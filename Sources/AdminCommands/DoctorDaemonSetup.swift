import AuthConfig
import PassdbRegistry

/// Where the daemon listens, and who says so.
struct DaemonSocket {
    /// The (first) Unix socket; the socket checks apply to it. `inet:HOST:PORT` when `listen` has TCP
    /// endpoints only (then only its greeting is checked).
    var path: String
    /// The TCP endpoints of `listen` (`inet:HOST:PORT`); there is no file to check for them.
    var inetEndpoints: [ListenEndpoint] = []
    /// For messages: `listen in FILE`, or `ListenStream= of saslgated.socket`.
    var source: String
    var fromSystemd: Bool

    /// The command that starts the daemon on this socket.
    func startCommand(configPath: String) -> String {
        fromSystemd
            ? "systemctl enable --now saslgated.socket"
            : "start saslgated (systemctl enable --now saslgated.socket, or saslgated -c \(configPath))"
    }
}

/// What the checks need to know about saslgated.
struct DaemonSetup {
    var findings: [DoctorFinding]
    /// The daemon's settings, or the built-in defaults when its configuration cannot be used.
    var settings: Settings
    var socket: DaemonSocket
}

/// saslgated's own side: its configuration, the socket systemd creates for it (which wins over
/// `listen`), and the supplementary groups its passdbs need under `saslgated.service`.
struct DaemonSetupCheck {
    let environment: any DoctorEnvironment
    let configPath: String
    let daemonConfig: Result<Settings, CLIError>
    let systemdDirectory: String

    func run() -> DaemonSetup {
        var findings: [DoctorFinding] = []
        let settings: Settings
        switch daemonConfig {
        case .success(let s):
            settings = s
            findings.append(
                .ok(
                    "saslgated configuration \(configPath): mechanisms \(s.mechanisms.joined(separator: " ")), passdbs \(s.passdbs.map(\.description).joined(separator: " ")), cleartext_requires_tls = \(s.cleartextRequiresTLS ? "yes" : "no")"
                ))
        case .failure(let error):
            settings = Settings()
            findings.append(
                .fail(
                    "cannot use the saslgated configuration: \(error.message) (the checks below assume the built-in defaults)",
                    fix: "correct it; 'saslgated -c \(configPath) --check' lists every error"))
        }
        var socket = listeningSocket(settings, &findings)
        socket.inetEndpoints = settings.listen.filter(\.isInet)
        findings += inetFindings(settings)
        findings += passdbGroupFindings(settings)
        findings += networkFindings(settings)
        return DaemonSetup(findings: findings, settings: settings, socket: socket)
    }

    /// `listen`, unless saslgated.socket is installed: then systemd creates the socket and the daemon
    /// takes the one it is handed.
    private func listeningSocket(_ settings: Settings, _ findings: inout [DoctorFinding]) -> DaemonSocket {
        let firstUnix = settings.unixListenPaths.first ?? Settings().unixListenPaths.first ?? ""
        // With TCP endpoints only, the first of them is what the checks probe.
        let probed = settings.unixListenPaths.isEmpty ? settings.listen.first?.description : nil
        let configured = DaemonSocket(
            path: probed ?? doctorNormalizePath(firstUnix),
            source: daemonConfigRead ? "listen in \(configPath)" : "the built-in default listen", fromSystemd: false)
        let socketTexts = unitTexts("saslgated.socket")
        guard !socketTexts.isEmpty else { return configured }
        let unit = DoctorSocketUnit.parse(socketTexts)
        guard let path = unit.socketPath else {
            findings.append(
                .warning(
                    "\(systemdDirectory)/saslgated.socket has no ListenStream= path; systemd cannot pass saslgated its socket",
                    fix: "ListenStream=\(firstUnix) (reinstall with scripts/install)"))
            return configured
        }
        let p = doctorNormalizePath(path)
        var owner: [String] = []
        if let u = unit.socketUser { owner.append("SocketUser=\(u)") }
        if let g = unit.socketGroup { owner.append("SocketGroup=\(g)") }
        if let m = unit.socketMode { owner.append("SocketMode=\(m)") }
        if p != configured.path {
            findings.append(
                .warning(
                    "\(systemdDirectory)/saslgated.socket has ListenStream=\(p) but \(configured.source) is \(configured.path): under systemd the daemon serves \(p) and ignores 'listen'; started by hand it serves \(configured.path)",
                    fix: "make them the same (listen = \(p) in \(configPath))"))
        } else {
            findings.append(
                .ok(
                    "\(systemdDirectory)/saslgated.socket: systemd creates \(p)\(owner.isEmpty ? "" : " (\(owner.joined(separator: " ")))") and hands it to saslgated"
                ))
        }
        return DaemonSocket(path: p, source: "ListenStream= of saslgated.socket", fromSystemd: true)
    }

    /// The TCP endpoints: nothing on disk to check, and whether `inet_clients` admits the Postfix hosts
    /// cannot be known from here; say where they are and what they need.
    private func inetFindings(_ settings: Settings) -> [DoctorFinding] {
        settings.listen.filter(\.isInet).map { endpoint in
            if settings.inetTLS {
                return .ok(
                    "saslgated listens on \(endpoint) with TLS (inet_tls_cert); inet_clients = \(settings.inetClientsText). Postfix cannot speak TLS to an auth server: this endpoint is for TLS-capable clients (stunnel, a custom client)")
            }
            return .warning(
                "saslgated listens on \(endpoint) in plain TCP: auth requests and passwords cross the network unencrypted; only hosts in inet_clients = \(settings.inetClientsText) may connect (doctor cannot tell whether that includes your Postfix hosts)",
                fix: "keep this endpoint on a private or container network, and make inet_clients list exactly the Postfix hosts")
        }
    }

    /// The groups the daemon adds for its passdbs when it drops root (the registry decides, for the
    /// daemon and for this check alike), against the unit's `User=` and `SupplementaryGroups=`.
    private func passdbGroupFindings(_ settings: Settings) -> [DoctorFinding] {
        let serviceTexts = unitTexts("saslgated.service")
        let needed = PassdbRegistry.supplementaryGroups(for: settings.passdbs)
        guard !serviceTexts.isEmpty, !needed.isEmpty else { return [] }
        let unit = DoctorServiceUnit.parse(serviceTexts)
        return needed.map { driver, group in
            if unit.user != nil && unit.user != "root" && !unit.supplementaryGroups.contains(group.name) {
                return .warning(
                    "passdbs uses \(driver): but saslgated.service runs as \(unit.user ?? "?") without SupplementaryGroups=\(group.name): \(group.withoutIt)",
                    fix:
                        "add a drop-in \(systemdDirectory)/saslgated.service.d/\(driver).conf with '[Service]' and 'SupplementaryGroups=\(group.name)' (scripts/install writes it), then systemctl daemon-reload"
                )
            }
            return .ok("saslgated.service can serve \(driver): (group \(group.name) for \(group.neededBy))")
        }
    }

    /// TCP endpoints and network passdbs against the unit's sandbox (PrivateNetwork=yes,
    /// RestrictAddressFamilies=AF_UNIX and IPAddressDeny=any unless the network drop-in lifts them).
    private func networkFindings(_ settings: Settings) -> [DoctorFinding] {
        let needs = PassdbRegistry.networkNeeds(settings)
        let serviceTexts = unitTexts("saslgated.service")
        guard !needs.isEmpty, !serviceTexts.isEmpty else { return [] }
        let blockers = DoctorServiceUnit.parse(serviceTexts).networkBlockers
        if blockers.isEmpty {
            return [.ok("saslgated.service may use the network, needed by \(needs.joined(separator: ", "))")]
        }
        return [
            .fail(
                "\(needs.joined(separator: ", ")) needs IP networking, but saslgated.service has \(blockers.joined(separator: ", ")): every connection to the server fails (a temporary failure for each login)",
                fix: "install the drop-in \(systemdDirectory)/saslgated.service.d/network.conf (systemd/dropins/network.conf; scripts/install writes it), then systemctl daemon-reload and systemctl restart saslgated")
        ]
    }

    private var daemonConfigRead: Bool {
        if case .success = daemonConfig { return true }
        return false
    }

    /// A unit file and its `.d/*.conf` drop-ins (in name order); empty when the unit is not installed.
    private func unitTexts(_ name: String) -> [String] {
        guard let main = environment.readFile("\(systemdDirectory)/\(name)") else { return [] }
        let dropInDirectory = "\(systemdDirectory)/\(name).d"
        let dropIns = (environment.listDirectory(dropInDirectory) ?? []).filter { $0.hasSuffix(".conf") }.sorted()
        return [main] + dropIns.compactMap { environment.readFile("\(dropInDirectory)/\($0)") }
    }
}
