public import AuthConfig
import PassdbRegistry

/// One result line of `saslgate doctor`: `ok: …`, `warning: …; fix: …`, `FAIL: …; fix: …`.
public struct DoctorFinding: Sendable, Equatable {
    public enum Level: String, Sendable {
        case ok = "ok"
        case warning = "warning"
        case fail = "FAIL"
    }

    public var level: Level
    public var text: String
    public var fix: String?

    public init(_ level: Level, _ text: String, fix: String? = nil) {
        self.level = level
        self.text = text
        self.fix = fix
    }

    public static func ok(_ text: String) -> DoctorFinding { DoctorFinding(.ok, text) }
    public static func warning(_ text: String, fix: String? = nil) -> DoctorFinding {
        DoctorFinding(.warning, text, fix: fix)
    }
    public static func fail(_ text: String, fix: String) -> DoctorFinding { DoctorFinding(.fail, text, fix: fix) }

    /// The printed line (`prefix` names the master.cf services it is about).
    public func line(prefix: String = "") -> String {
        var s = "\(level.rawValue): \(prefix)\(text)"
        if let fix { s += "; fix: \(fix)" }
        return s
    }
}

/// Everything `saslgate doctor` prints, in order.
public struct DoctorReport: Sendable, Equatable {
    /// Finding lines, already prefixed.
    public var lines: [String] = []
    public var failures = 0
    public var warnings = 0
    /// The main.cf lines to use.
    public var mainCF: [String] = []
    /// The same as a `postconf -e` command.
    public var postconfCommand = ""
    /// `postfix reload` (with `-c DIR` for another configuration directory).
    public var reloadCommand = "postfix reload"

    public var failed: Bool { failures > 0 }

    mutating func add(_ finding: DoctorFinding, prefix: String = "") {
        lines.append(finding.line(prefix: prefix))
        switch finding.level {
        case .ok: break
        case .warning: warnings += 1
        case .fail: failures += 1
        }
    }

    /// The whole output.
    public var output: [String] {
        var out = lines
        out.append("")
        out.append(
            failures == 0
                ? "No problems found\(warnings > 0 ? " (\(warnings) warning\(warnings == 1 ? "" : "s"))" : "")."
                : "\(failures) problem\(failures == 1 ? "" : "s") (FAIL) and \(warnings) warning\(warnings == 1 ? "" : "s")."
        )
        out.append("Postfix main.cf lines for saslgated:")
        out += mainCF.map { "    \($0)" }
        out.append("Set them with:")
        out.append("    \(postconfCommand)")
        out.append("    \(reloadCommand)")
        return out
    }
}

/// The checks, over a `DoctorEnvironment`.
public struct DoctorChecker {
    public let environment: any DoctorEnvironment
    /// The daemon's configuration file (for messages) and what reading it gave.
    public let configPath: String
    public let daemonConfig: Result<Settings, CLIError>
    public let postfixDirectory: String
    public let systemdDirectory: String
    /// How long to wait for the daemon's greeting.
    public var greetingTimeout: Duration = .seconds(5)

    public init(
        environment: any DoctorEnvironment, configPath: String, daemonConfig: Result<Settings, CLIError>,
        postfixDirectory: String = DoctorChecker.defaultPostfixDirectory,
        systemdDirectory: String = DoctorChecker.defaultSystemdDirectory
    ) {
        self.environment = environment
        self.configPath = configPath
        self.daemonConfig = daemonConfig
        self.postfixDirectory = postfixDirectory
        self.systemdDirectory = systemdDirectory
    }

    public static let defaultPostfixDirectory = "/etc/postfix"
    public static let defaultSystemdDirectory = "/etc/systemd/system"
    static let defaultQueueDirectory = "/var/spool/postfix"
    static let defaultMailOwner = "postfix"

    /// main.cf parameters the checks read.
    static let parameters =
        [
            "mail_version", "mail_owner", "queue_directory", "compatibility_level",
            "smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path",
            "smtpd_sasl_security_options", "smtpd_sasl_tls_security_options", "smtpd_sasl_mechanism_filter",
            "smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls", "smtpd_tls_auth_only",
            "smtpd_tls_wrappermode",
        ] + PostfixTLSPosture.certificateParameters

    /// Where the daemon listens, and who says so.
    struct DaemonSocket {
        var path: String
        var source: String
        var fromSystemd: Bool
    }

    /// What the socket probe found (shared by every service that uses the same path).
    struct SocketProbe {
        var findings: [DoctorFinding]
        var mechanisms: [DoctorMechanism]?
    }

    /// The SMTP server being checked: a master.cf service, or main.cf alone.
    struct ServiceView {
        var service: PostfixMasterService?
        var main: PostfixMainConfig

        func value(_ name: String) -> String { service?.overrides[name] ?? main[name] ?? "" }
        func isOverridden(_ name: String) -> Bool { service?.overrides[name] != nil }
        func has(_ name: String) -> Bool { service?.overrides[name] != nil || main[name] != nil }
    }

    public func run() -> DoctorReport {
        var report = DoctorReport()
        var state = RunState()

        // --- saslgated's own configuration
        let settings: Settings
        switch daemonConfig {
        case .success(let s):
            settings = s
            report.add(
                .ok(
                    "saslgated configuration \(configPath): mechanisms \(s.mechanisms.joined(separator: " ")), passdbs \(s.passdbs.map(\.description).joined(separator: " ")), cleartext_requires_tls = \(s.cleartextRequiresTLS ? "yes" : "no")"
                ))
        case .failure(let error):
            settings = Settings()
            report.add(
                .fail(
                    "cannot use the saslgated configuration: \(error.message) (the checks below assume the built-in defaults)",
                    fix: "correct it; 'saslgated -c \(configPath) --check' lists every error"))
        }

        // --- systemd units
        let daemonSocket = checkUnits(settings, &report)

        // --- Postfix
        let mainResult = environment.run(["postconf", "-c", postfixDirectory, "-x"] + DoctorChecker.parameters)
        guard mainResult.status == 0 else {
            report.add(
                .fail(
                    "cannot read Postfix's configuration in \(postfixDirectory): \(mainResult.lastError)",
                    fix:
                        "install and configure Postfix (apt-get install postfix), or give its directory with --postfix-config DIR"
                ))
            // The daemon side can still be checked.
            let account = mailOwner(DoctorChecker.defaultMailOwner, &report)
            let probe = probeSocket(
                daemonSocket.path, chrootRoot: nil, account: account, settings: settings, daemon: daemonSocket,
                state: &state)
            for f in probe.findings { report.add(f) }
            finish(
                &report, settings: settings, daemonSocket: daemonSocket,
                queueDirectory: DoctorChecker.defaultQueueDirectory, state: state)
            return report
        }
        let main = PostfixMainConfig.parse(postconfOutput: mainResult.output)
        let queueDirectory = nonEmpty(main["queue_directory"]) ?? DoctorChecker.defaultQueueDirectory
        let compatibility = nonEmpty(main["compatibility_level"]) ?? "0"
        report.add(
            .ok(
                "Postfix\(main["mail_version"].map { " \($0)" } ?? "") configuration in \(postfixDirectory): queue_directory = \(queueDirectory), mail_owner = \(main["mail_owner"] ?? DoctorChecker.defaultMailOwner), compatibility_level = \(compatibility)"
            ))
        let account = mailOwner(nonEmpty(main["mail_owner"]) ?? DoctorChecker.defaultMailOwner, &report)

        var services: [PostfixMasterService] = []
        let masterResult = environment.run(["postconf", "-c", postfixDirectory, "-M"])
        if masterResult.status == 0 {
            services = PostfixMasterService.parse(postconfM: masterResult.output)
            let overrides = environment.run(["postconf", "-c", postfixDirectory, "-Px"])
            if overrides.status == 0 { PostfixMasterService.applyOverrides(postconfP: overrides.output, to: &services) }
        } else {
            report.add(
                .warning(
                    "cannot read master.cf in \(postfixDirectory) (\(masterResult.lastError)); assuming one smtpd that is not chrooted",
                    fix: "check \(postfixDirectory)/master.cf (postconf -c \(postfixDirectory) -M)"))
        }
        let smtpd = services.filter(\.isSMTPServer)
        var views = smtpd.map { ServiceView(service: $0, main: main) }
        if views.isEmpty {
            if masterResult.status == 0 {
                report.add(
                    .warning(
                        "master.cf in \(postfixDirectory) runs no smtpd: Postfix does not accept SMTP connections at all",
                        fix: "add an smtpd service, e.g. 'smtp inet n - y - - smtpd' (Debian's default)"))
            }
            views = [ServiceView(service: nil, main: main)]
        }

        // --- smtpd_sasl_auth_enable (main.cf, or -o per service)
        let enabled = views.filter { doctorIsYes($0.value("smtpd_sasl_auth_enable")) }
        if doctorIsYes(main["smtpd_sasl_auth_enable"] ?? "") {
            let off = views.filter { !doctorIsYes($0.value("smtpd_sasl_auth_enable")) }.compactMap(\.service?.id)
            report.add(
                .ok(
                    "smtpd_sasl_auth_enable = yes"
                        + (off.isEmpty ? "" : " (master.cf switches it off for \(off.joined(separator: ", ")))")))
        } else if !enabled.isEmpty {
            report.add(
                .ok(
                    "smtpd_sasl_auth_enable = yes for \(enabled.compactMap(\.service?.id).joined(separator: ", ")) (master.cf -o; main.cf: no)"
                ))
        } else {
            report.add(
                .fail(
                    "smtpd_sasl_auth_enable = no: Postfix offers no AUTH at all and never asks saslgated",
                    fix:
                        "postconf\(postfixDirectory == DoctorChecker.defaultPostfixDirectory ? "" : " -c \(postfixDirectory)") -e 'smtpd_sasl_auth_enable = yes'"
                ))
        }
        let checked = enabled.isEmpty ? views : enabled

        // --- per smtpd service; services with the same findings are reported together
        var groups: [(ids: [String], findings: [DoctorFinding])] = []
        for view in checked {
            let findings = serviceFindings(
                view, settings: settings, daemon: daemonSocket, queueDirectory: queueDirectory,
                compatibility: compatibility,
                account: account, state: &state)
            let id = view.service?.id ?? "main.cf"
            if let i = groups.firstIndex(where: { $0.findings == findings }) {
                groups[i].ids.append(id)
            } else {
                groups.append(([id], findings))
            }
        }
        for group in groups {
            let prefix = groups.count > 1 ? "\(group.ids.joined(separator: ", ")): " : ""
            for f in group.findings { report.add(f, prefix: prefix) }
        }

        finish(&report, settings: settings, daemonSocket: daemonSocket, queueDirectory: queueDirectory, state: state)
        return report
    }

    /// What the checks learned along the way, for the final main.cf lines.
    struct RunState {
        var probes: [String: SocketProbe] = [:]
        var securityOptionsBroken = false
        var tlsSecurityOptionsBroken = false
        var noTLS = false
        var chrootedAbsolute = false
    }

    // MARK: - systemd

    /// Reads saslgated.socket/.service (with drop-ins) and returns where the daemon really listens.
    func checkUnits(_ settings: Settings, _ report: inout DoctorReport) -> DaemonSocket {
        let socketTexts = unitTexts("saslgated.socket")
        var daemon = DaemonSocket(
            path: doctorNormalizePath(settings.listen),
            source: daemonConfigRead ? "listen in \(configPath)" : "the built-in default listen", fromSystemd: false)
        if !socketTexts.isEmpty {
            let unit = DoctorSocketUnit.parse(socketTexts)
            if let path = unit.socketPath {
                let p = doctorNormalizePath(path)
                var owner: [String] = []
                if let u = unit.socketUser { owner.append("SocketUser=\(u)") }
                if let g = unit.socketGroup { owner.append("SocketGroup=\(g)") }
                if let m = unit.socketMode { owner.append("SocketMode=\(m)") }
                if p != daemon.path {
                    report.add(
                        .warning(
                            "\(systemdDirectory)/saslgated.socket has ListenStream=\(p) but \(daemon.source) is \(daemon.path): under systemd the daemon serves \(p) and ignores 'listen'; started by hand it serves \(daemon.path)",
                            fix: "make them the same (listen = \(p) in \(configPath))"))
                } else {
                    report.add(
                        .ok(
                            "\(systemdDirectory)/saslgated.socket: systemd creates \(p)\(owner.isEmpty ? "" : " (\(owner.joined(separator: " ")))") and hands it to saslgated"
                        ))
                }
                daemon = DaemonSocket(path: p, source: "ListenStream= of saslgated.socket", fromSystemd: true)
            } else {
                report.add(
                    .warning(
                        "\(systemdDirectory)/saslgated.socket has no ListenStream= path; systemd cannot pass saslgated its socket",
                        fix: "ListenStream=\(settings.listen) (reinstall with scripts/install)"))
            }
        }
        // The groups the daemon adds for its passdbs when it drops root (the same function decides).
        let serviceTexts = unitTexts("saslgated.service")
        let needed = PassdbRegistry.supplementaryGroups(for: settings.passdbs)
        if !serviceTexts.isEmpty, !needed.isEmpty {
            let unit = DoctorServiceUnit.parse(serviceTexts)
            for (driver, group) in needed {
                if unit.user != nil && unit.user != "root" && !unit.supplementaryGroups.contains(group.name) {
                    report.add(
                        .warning(
                            "passdbs uses \(driver): but saslgated.service runs as \(unit.user ?? "?") without SupplementaryGroups=\(group.name): \(group.withoutIt)",
                            fix:
                                "add a drop-in \(systemdDirectory)/saslgated.service.d/\(driver).conf with '[Service]' and 'SupplementaryGroups=\(group.name)' (scripts/install writes it), then systemctl daemon-reload"
                        ))
                } else {
                    report.add(.ok("saslgated.service can serve \(driver): (group \(group.name) for \(group.neededBy))"))
                }
            }
        }
        return daemon
    }

    var daemonConfigRead: Bool {
        if case .success = daemonConfig { return true }
        return false
    }

    /// A unit file and its `.d/*.conf` drop-ins (in name order); empty when the unit is not installed.
    func unitTexts(_ name: String) -> [String] {
        guard let main = environment.readFile("\(systemdDirectory)/\(name)") else { return [] }
        let dropInDirectory = "\(systemdDirectory)/\(name).d"
        let dropIns = (environment.listDirectory(dropInDirectory) ?? []).filter { $0.hasSuffix(".conf") }.sorted()
        return [main] + dropIns.compactMap { environment.readFile("\(dropInDirectory)/\($0)") }
    }

    // MARK: - Postfix's user

    func mailOwner(_ name: String, _ report: inout DoctorReport) -> DoctorAccount? {
        guard let account = environment.account(named: name) else {
            report.add(
                .fail(
                    "mail_owner \(name) is not a user on this system: Postfix cannot run",
                    fix: "create it (apt-get install postfix does) or correct mail_owner"))
            return nil
        }
        return account
    }

    // MARK: - One smtpd service

    func serviceFindings(
        _ view: ServiceView, settings: Settings, daemon: DaemonSocket, queueDirectory: String, compatibility: String,
        account: DoctorAccount?, state: inout RunState
    ) -> [DoctorFinding] {
        var out: [DoctorFinding] = []

        // smtpd_sasl_type
        let type = view.value("smtpd_sasl_type")
        if type.lowercased() == "dovecot" {
            out.append(.ok("smtpd_sasl_type = dovecot"))
        } else {
            let what = type.lowercased() == "cyrus" ? "the Cyrus SASL library (saslauthd, sasldb)" : "'\(type)'"
            out.append(
                .fail(
                    "smtpd_sasl_type = \(type.isEmpty ? "(empty)" : type): Postfix asks \(what), not saslgated",
                    fix: setting(view, "smtpd_sasl_type", "dovecot")))
        }

        // smtpd_sasl_path, relative to queue_directory, and the chroot
        let chrooted =
            view.service.map { PostfixChroot.isChrooted(column: $0.chrootColumn, compatibilityLevel: compatibility) }
            ?? false
        let chrootWhy =
            view.service.map {
                "smtpd \(chrooted ? "chrooted in \(queueDirectory)" : "not chrooted"): \(PostfixChroot.explanation(column: $0.chrootColumn, compatibilityLevel: compatibility))"
            } ?? "smtpd assumed not chrooted"
        let configured = view.value("smtpd_sasl_path")
        let sasl = PostfixSASLPath.resolve(configured, queueDirectory: queueDirectory, chrooted: chrooted)
        let relativeDaemon = doctorRelativePath(daemon.path, inside: queueDirectory)
        let pathFix: String
        if let relativeDaemon {
            pathFix =
                setting(view, "smtpd_sasl_path", relativeDaemon) + " (relative to queue_directory = \(queueDirectory))"
        } else if chrooted {
            pathFix =
                "a chrooted smtpd only reaches sockets below \(queueDirectory): set listen = \(queueDirectory)/private/auth in \(configPath)\(daemon.fromSystemd ? " and ListenStream= in saslgated.socket" : ""), then "
                + setting(view, "smtpd_sasl_path", "private/auth")
        } else {
            pathFix = setting(view, "smtpd_sasl_path", daemon.path)
        }
        var probePath = daemon.path
        switch sasl.target {
        case .inet(let address):
            out.append(
                .fail(
                    "smtpd_sasl_path = \(configured) makes Postfix connect over TCP to \(address), but saslgated only listens on a Unix socket (\(daemon.path))",
                    fix: pathFix))
        case .unix(let hostPath):
            probePath = hostPath
            let shown = "smtpd_sasl_path = \(configured.isEmpty ? "(empty)" : configured)"
            if sasl.absoluteInChroot {
                state.chrootedAbsolute = true
                out.append(
                    .fail(
                        "\(shown) is absolute, but \(chrootWhy); inside the chroot it opens \(hostPath), not \(doctorNormalizePath(configured.hasPrefix("unix:") ? String(configured.dropFirst(5)) : configured))",
                        fix: pathFix
                            + (relativeDaemon == nil
                                ? "" : ", or set the chroot column of \(view.service?.id ?? "smtpd") to n")))
            } else if hostPath != daemon.path {
                out.append(
                    .fail(
                        "Postfix connects to \(hostPath) (\(shown)\(sasl.isRelative ? ", relative to queue_directory = \(queueDirectory)" : "")), but saslgated listens on \(daemon.path) (\(daemon.source))",
                        fix: pathFix))
            } else {
                out.append(
                    .ok(
                        "Postfix connects to \(hostPath) (\(shown)\(sasl.isRelative ? ", relative to queue_directory" : ""); \(chrootWhy)), where saslgated listens (\(daemon.source))"
                    ))
            }
        }

        // The socket itself: on disk, permissions for mail_owner, the greeting
        let probe = probeSocket(
            probePath, chrootRoot: chrooted ? queueDirectory : nil, account: account, settings: settings,
            daemon: daemon,
            state: &state)
        out += probe.findings

        // Mechanisms through Postfix's filters, and the TLS policy
        let tls = PostfixTLSPosture.from(view.value) { path in
            if case .success = environment.status(path) { return true }
            return false
        }
        out += mechanismFindings(view, settings: settings, tls: tls, offered: probe.mechanisms, state: &state)
        out += tlsFindings(view, settings: settings, tls: tls, offered: probe.mechanisms, state: &state)
        return out
    }

    /// `postconf -e 'name = value'`, or the master.cf override when the service has one.
    func setting(_ view: ServiceView, _ name: String, _ value: String) -> String {
        let c = postfixDirectory == DoctorChecker.defaultPostfixDirectory ? "" : " -c \(postfixDirectory)"
        if let service = view.service, view.isOverridden(name) {
            return "postconf\(c) -P '\(service.id)/\(name)=\(value)' (master.cf -o overrides main.cf for \(service.id))"
        }
        return "postconf\(c) -e '\(name) = \(value)'"
    }

    // MARK: - The socket

    func probeSocket(
        _ path: String, chrootRoot: String?, account: DoctorAccount?, settings: Settings, daemon: DaemonSocket,
        state: inout RunState
    ) -> SocketProbe {
        let key = "\(path)|\(chrootRoot ?? "")"
        if let cached = state.probes[key] { return cached }
        var findings: [DoctorFinding] = []
        var mechanisms: [DoctorMechanism]? = nil
        defer { state.probes[key] = SocketProbe(findings: findings, mechanisms: mechanisms) }

        let start =
            daemon.fromSystemd
            ? "systemctl enable --now saslgated.socket"
            : "start saslgated (systemctl enable --now saslgated.socket, or saslgated -c \(configPath))"
        switch environment.status(path) {
        case .failure(let error) where error.isMissing:
            findings.append(
                .fail(
                    "\(path) does not exist: saslgated is not running there\(path == daemon.path ? "" : " (it listens on \(daemon.path))")",
                    fix: path == daemon.path ? start : "point Postfix at \(daemon.path) (see above)"))
            return SocketProbe(findings: findings, mechanisms: nil)
        case .failure(let error):
            if error.isPermission && environment.effectiveUID != 0 {
                findings.append(
                    .warning(
                        "cannot look at \(path) as uid \(environment.effectiveUID) (\(error)); socket checks skipped",
                        fix: "run saslgate doctor as root"))
            } else {
                findings.append(.fail("cannot look at \(path): \(error)", fix: "check the directories on the way"))
            }
            return SocketProbe(findings: findings, mechanisms: nil)
        case .success(let status) where !status.isSocket:
            findings.append(
                .fail(
                    "\(path) exists but is not a socket (\(status.modeString))",
                    fix: "remove it; saslgated (or systemd) creates the socket"))
            return SocketProbe(findings: findings, mechanisms: nil)
        case .success(let status):
            if let account {
                findings += accessFindings(
                    path, status: status, chrootRoot: chrootRoot, account: account, daemon: daemon)
            }
            if status.permissions & 0o002 != 0 {
                findings.append(
                    .warning(
                        "\(path) is writable by every local user (\(status.modeString)): anyone on this host can try passwords",
                        fix: daemon.fromSystemd
                            ? "SocketMode=0660 in saslgated.socket" : "listen_mode = 0660 in \(configPath)"))
            }
            if let account, !settings.clientAllowlist.isEmpty, !allowlistAdmits(settings.clientAllowlist, account) {
                findings.append(
                    .fail(
                        "client_allowlist = \(settings.clientAllowlist.joined(separator: " ")) does not admit \(account.name) (mail_owner): saslgated closes Postfix's connections",
                        fix: "add \(account.name) to client_allowlist in \(configPath)"))
            }
        }

        switch environment.greeting(socketPath: path, timeout: greetingTimeout) {
        case .success(let greeting):
            mechanisms = greeting.mechanisms
            findings.append(
                .ok(
                    "\(path) answers like Dovecot's auth-client socket: VERSION \(greeting.major) \(greeting.minor), MECH \(greeting.mechanisms.isEmpty ? "(none)" : greeting.mechanisms.map(\.description).joined(separator: " ")), DONE"
                ))
        case .failure(let error):
            if error.description.contains("permission denied") && environment.effectiveUID != 0 {
                findings.append(
                    .warning(
                        "cannot connect to \(path) as uid \(environment.effectiveUID): \(error)",
                        fix: "run saslgate doctor as root"))
            } else {
                findings.append(
                    .fail(
                        "no usable greeting from \(path): \(error)",
                        fix: "is saslgated running and is this its socket? (\(start); journalctl -u saslgated)"))
            }
        }
        return SocketProbe(findings: findings, mechanisms: mechanisms)
    }

    func accessFindings(
        _ path: String, status: DoctorFileStatus, chrootRoot: String?, account: DoctorAccount, daemon: DaemonSocket
    ) -> [DoctorFinding] {
        var directories: [(path: String, status: DoctorFileStatus)] = []
        for dir in DoctorAccess.traversedDirectories(of: path, chrootRoot: chrootRoot) {
            if case .success(let s) = environment.status(dir) { directories.append((dir, s)) }
        }
        let who = describe(account)
        let owner =
            "\(environment.userName(uid: status.uid) ?? String(status.uid)):\(environment.groupName(gid: status.gid) ?? String(status.gid))"
        switch DoctorAccess.connectVerdict(account, socket: status, directories: directories) {
        case .allowed:
            return [.ok("\(path) is a socket (\(status.modeString) \(owner)) that \(who) may connect to")]
        case .directoryDenied(let dir, let s):
            let dirOwner =
                "\(environment.userName(uid: s.uid) ?? String(s.uid)):\(environment.groupName(gid: s.gid) ?? String(s.gid))"
            return [
                .fail(
                    "\(who) cannot reach \(path): no search permission on \(dir) (\(s.modeString) \(dirOwner))",
                    fix:
                        "let \(account.name) enter \(dir) (e.g. chgrp \(account.name) \(dir); chmod g+x \(dir)), or put the socket in queue_directory/private"
                )
            ]
        case .socketDenied:
            let fix =
                daemon.fromSystemd
                ? "SocketUser=\(account.name), SocketGroup=\(account.name), SocketMode=0660 in saslgated.socket, then systemctl daemon-reload; systemctl restart saslgated.socket"
                : "listen_user = \(account.name), listen_group = \(account.name), listen_mode = 0660 in \(configPath), then restart saslgated"
            return [
                .fail(
                    "\(who) may not connect to \(path) (\(status.modeString) \(owner); connect needs write permission)",
                    fix: fix)
            ]
        }
    }

    func describe(_ account: DoctorAccount) -> String {
        let groups = ([account.gid] + account.groups).reduce(into: [UInt32]()) { if !$0.contains($1) { $0.append($1) } }
        let names = groups.map { environment.groupName(gid: $0) ?? String($0) }
        return "\(account.name) (mail_owner, uid \(account.uid), groups \(names.joined(separator: ",")))"
    }

    func allowlistAdmits(_ list: [String], _ account: DoctorAccount) -> Bool {
        let groupNames = Set(([account.gid] + account.groups).compactMap { environment.groupName(gid: $0) })
        for entry in list {
            if entry == account.name || entry == String(account.uid) { return true }
            if entry.hasPrefix("@"), groupNames.contains(String(entry.dropFirst())) { return true }
        }
        return false
    }

    // MARK: - Mechanisms

    func mechanismFindings(
        _ view: ServiceView, settings: Settings, tls: PostfixTLSPosture, offered: [DoctorMechanism]?,
        state: inout RunState
    ) -> [DoctorFinding] {
        var out: [DoctorFinding] = []
        let predicted = offered == nil
        let mechanisms = offered ?? settings.mechanisms.map(DoctorMechanism.predicted)
        let source =
            predicted ? "predicted from 'mechanisms' in \(configPath), the daemon did not answer" : "as advertised"
        if mechanisms.isEmpty {
            out.append(
                .fail(
                    "saslgated advertises no mechanism: Postfix stops with 'fatal: no SASL authentication mechanisms'",
                    fix: "'saslgated -c \(configPath) --check' shows which mechanisms the passdbs can serve"))
            return out
        }
        let filter = PostfixMechanismFilter(
            view.has("smtpd_sasl_mechanism_filter") ? view.value("smtpd_sasl_mechanism_filter") : nil)
        if !filter.unevaluable.isEmpty {
            out.append(
                .warning(
                    "smtpd_sasl_mechanism_filter uses \(filter.unevaluable.joined(separator: ", ")), which this check cannot look into; assumed to keep every mechanism",
                    fix: "check it by hand"))
        }

        func evaluate(_ parameter: String, phase: String) -> [DoctorMechanism]? {
            let options = PostfixSASLSecurityOptions(view.value(parameter))
            if !options.unknown.isEmpty {
                if parameter == "smtpd_sasl_security_options" {
                    state.securityOptionsBroken = true
                } else {
                    state.tlsSecurityOptionsBroken = true
                }
                out.append(
                    .fail(
                        "\(parameter) = \(options) has unknown word(s) \(options.unknown.joined(separator: ", ")): smtpd stops with a fatal error",
                        fix: "use only noanonymous, noplaintext, noactive, nodictionary, mutual_auth, forward_secrecy: "
                            + setting(view, parameter, "noanonymous")))
                return nil
            }
            let afterOptions = options.filter(mechanisms)
            let kept = filter.filter(afterOptions)
            guard kept.isEmpty else { return kept }
            var reasons = mechanisms.compactMap { m in options.rejection(of: m).map { "\(m.name): \($0)" } }
            let filtered = afterOptions.filter { !filter.keeps($0.name) }.map(\.name)
            if !filtered.isEmpty {
                reasons.append("smtpd_sasl_mechanism_filter drops \(filtered.joined(separator: " "))")
            }
            let fix: String
            if afterOptions.isEmpty {
                if parameter == "smtpd_sasl_security_options" {
                    state.securityOptionsBroken = true
                } else {
                    state.tlsSecurityOptionsBroken = true
                }
                let plaintextOnly = mechanisms.allSatisfy(\.isPlaintext)
                fix =
                    setting(view, parameter, "noanonymous")
                    + (plaintextOnly && parameter == "smtpd_sasl_security_options"
                        ? " and keep PLAIN/LOGIN under TLS with " + setting(view, "smtpd_tls_auth_only", "yes")
                        : "")
                    + (plaintextOnly
                        ? ", or offer a mechanism without the plaintext flag (e.g. mechanisms = plain login cram-md5 with a passwd-file that stores {CRAM-MD5} or {PLAIN})"
                        : "")
            } else {
                fix = setting(view, "smtpd_sasl_mechanism_filter", PostfixMechanismFilter.postfixDefault)
            }
            let fatal =
                afterOptions.isEmpty
                ? "no SASL authentication mechanisms"
                : "smtpd_sasl_mechanism_filter discards all mechanisms in '\(afterOptions.map(\.name).joined(separator: " "))'"
            let survives =
                afterOptions.isEmpty
                ? "\(parameter) = \(options)"
                : "\(parameter) = \(options) and smtpd_sasl_mechanism_filter = \(view.value("smtpd_sasl_mechanism_filter"))"
            out.append(
                .fail(
                    "\(phase) no mechanism survives \(survives) (saslgated offers \(mechanisms.map(\.description).joined(separator: " ")), \(source); \(reasons.joined(separator: "; "))): smtpd stops with \"fatal: \(fatal)\" when a client connects",
                    fix: fix))
            return nil
        }

        var before: [DoctorMechanism]? = nil
        var after: [DoctorMechanism]? = nil
        var okBefore = true
        var okAfter = true
        if tls.authBeforeTLS {
            before = evaluate("smtpd_sasl_security_options", phase: tls.tlsPossible ? "before STARTTLS" : "without TLS")
            okBefore = before != nil
        }
        if tls.authAfterTLS {
            after = evaluate("smtpd_sasl_tls_security_options", phase: tls.wrapperMode ? "over TLS" : "after STARTTLS")
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
            out.append(.ok("Postfix offers AUTH \(parts.joined(separator: "; ")) (\(source))"))
        }
        return out
    }

    // MARK: - TLS policy

    func tlsFindings(
        _ view: ServiceView, settings: Settings, tls: PostfixTLSPosture, offered: [DoctorMechanism]?,
        state: inout RunState
    ) -> [DoctorFinding] {
        let mechanisms = offered ?? settings.mechanisms.map(DoctorMechanism.predicted)
        let plaintextOnly = !mechanisms.isEmpty && mechanisms.allSatisfy(\.isPlaintext)
        let plaintextNames = mechanisms.filter(\.isPlaintext).map(\.name)
        let daemonReason = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections"
        let c = postfixDirectory == DoctorChecker.defaultPostfixDirectory ? "" : " -c \(postfixDirectory)"
        let certificateFix =
            "give smtpd a certificate: postconf\(c) -e 'smtpd_tls_security_level = may' 'smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem' 'smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key' (or your own certificate)"
            + (view.isOverridden("smtpd_tls_security_level")
                ? " and drop -o smtpd_tls_security_level from \(view.service?.id ?? "the service") in master.cf" : "")
        if !tls.tlsPossible {
            state.noTLS = true
            var why: [String] = []
            if !tls.wrapperMode && tls.level == "none" {
                why.append(
                    "smtpd_tls_security_level = \(view.value("smtpd_tls_security_level").isEmpty ? "(empty)" : view.value("smtpd_tls_security_level"))"
                )
            }
            if tls.certificates.isEmpty { why.append("no certificate (smtpd_tls_cert_file / smtpd_tls_chain_files)") }
            if !tls.missingCertificates.isEmpty {
                why.append("missing certificate file \(tls.missingCertificates.joined(separator: ", "))")
            }
            let noTLS = "smtpd cannot do TLS (\(why.joined(separator: ", ")))"
            if !tls.authBeforeTLS {
                return [
                    .fail(
                        "\(noTLS) and \(tls.authOnly ? "smtpd_tls_auth_only = yes" : "TLS is required first"): Postfix never offers AUTH",
                        fix: certificateFix)
                ]
            }
            if settings.cleartextRequiresTLS && plaintextOnly {
                return [
                    .fail(
                        "\(noTLS) and saslgated has cleartext_requires_tls = yes with only \(plaintextNames.joined(separator: "/")): every login is refused ('\(daemonReason)'), nobody can log in",
                        fix: certificateFix + ", then " + setting(view, "smtpd_tls_auth_only", "yes"))
                ]
            }
            if settings.cleartextRequiresTLS && !plaintextNames.isEmpty {
                return [
                    .warning(
                        "\(noTLS): with cleartext_requires_tls = yes saslgated refuses \(plaintextNames.joined(separator: "/")); only \(mechanisms.filter { !$0.isPlaintext }.map(\.name).joined(separator: " ")) can work",
                        fix: certificateFix)
                ]
            }
            if !plaintextNames.isEmpty {
                return [
                    .warning(
                        "\(noTLS) and cleartext_requires_tls = no: passwords cross the network in cleartext (\(plaintextNames.joined(separator: "/")))",
                        fix: certificateFix + ", then " + setting(view, "smtpd_tls_auth_only", "yes"))
                ]
            }
            return [.warning("\(noTLS): SMTP sessions, and what they carry, are not encrypted", fix: certificateFix)]
        }

        let certificate = tls.certificates.first ?? ""
        let securityBefore = PostfixSASLSecurityOptions(view.value("smtpd_sasl_security_options"))
        let offeredBefore = tls.authBeforeTLS ? securityBefore.filter(mechanisms).filter(\.isPlaintext).map(\.name) : []
        if !offeredBefore.isEmpty {
            if settings.cleartextRequiresTLS {
                return [
                    .warning(
                        "smtpd_tls_auth_only = no: Postfix offers \(offeredBefore.joined(separator: " ")) before STARTTLS, and clients that use them there get '535 5.7.8 Error: authentication failed: \(daemonReason)' from saslgated (cleartext_requires_tls = yes)",
                        fix: setting(view, "smtpd_tls_auth_only", "yes"))
                ]
            }
            return [
                .warning(
                    "smtpd_tls_auth_only = no and cleartext_requires_tls = no: \(offeredBefore.joined(separator: "/")) passwords may cross the network in cleartext before STARTTLS",
                    fix: setting(view, "smtpd_tls_auth_only", "yes"))
            ]
        }
        let mode =
            tls.wrapperMode
            ? "smtpd_tls_wrappermode = yes"
            : "smtpd_tls_security_level = \(tls.level), \(tls.authOnly ? "smtpd_tls_auth_only = yes" : "STARTTLS required")"
        return [.ok("TLS: \(mode), \(certificate): passwords only travel over TLS (Postfix sends 'secured')")]
    }

    // MARK: - The lines to use

    func finish(
        _ report: inout DoctorReport, settings: Settings, daemonSocket: DaemonSocket, queueDirectory: String,
        state: RunState
    ) {
        var lines = [
            "smtpd_sasl_auth_enable = yes",
            "smtpd_sasl_type = dovecot",
        ]
        if let relative = doctorRelativePath(daemonSocket.path, inside: queueDirectory) {
            lines.append("smtpd_sasl_path = \(relative)")
        } else {
            // Only an smtpd that is not chrooted reaches a socket outside queue_directory.
            lines.append("smtpd_sasl_path = \(daemonSocket.path)")
        }
        if state.securityOptionsBroken { lines.append("smtpd_sasl_security_options = noanonymous") }
        if state.tlsSecurityOptionsBroken {
            lines.append("smtpd_sasl_tls_security_options = $smtpd_sasl_security_options")
        }
        if state.noTLS {
            lines += [
                "smtpd_tls_security_level = may",
                "smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem",
                "smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key",
            ]
        }
        lines += [
            "smtpd_tls_auth_only = yes",
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        ]
        report.mainCF = lines
        let c = postfixDirectory == DoctorChecker.defaultPostfixDirectory ? "" : " -c \(postfixDirectory)"
        report.postconfCommand = "postconf\(c) -e " + lines.map { "'\($0)'" }.joined(separator: " ")
        report.reloadCommand = "postfix\(c) reload"
    }

    func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.isEmpty else { return nil }
        return s
    }
}
