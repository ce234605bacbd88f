public import AuthConfig

/// Runs the checks of `saslgate doctor` in the order they are printed, over a `DoctorEnvironment`:
/// saslgated's own setup (`DaemonSetupCheck`), Postfix's (`PostfixSetupCheck`), then for each smtpd
/// that offers AUTH where it connects (`SASLPathCheck`), the socket it finds there (`SocketFileCheck`,
/// `GreetingCheck`), what its filters leave of the mechanisms (`MechanismCheck`) and its TLS policy
/// (`TLSPolicyCheck`). Services with the same findings are reported together. The main.cf lines to
/// use (`MainCFAdvice`) close the report.
public struct DoctorChecker {
    public let environment: any DoctorEnvironment
    /// The daemon's configuration file (for messages) and what reading it gave.
    public let configPath: String
    public let daemonConfig: Result<Settings, CLIError>
    public let postfixDirectory: String
    public let systemdDirectory: String
    /// How long to wait for the daemon's greeting.
    public var greetingTimeout: Duration = .seconds(5)
    /// Open the passdbs here and reach their servers (databases, directories); `saslgate doctor` turns
    /// it on, tests of the other checks (over a fake environment) leave it off.
    public var probePassdbs = false

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

    public func run() -> DoctorReport {
        var report = DoctorReport()
        let postconf = PostconfFix(postfixDirectory: postfixDirectory)
        let daemon = DaemonSetupCheck(
            environment: environment, configPath: configPath, daemonConfig: daemonConfig,
            systemdDirectory: systemdDirectory
        ).run()
        for finding in daemon.findings { report.add(finding) }
        if probePassdbs, let settings = try? daemonConfig.get() {
            for finding in PassdbProbes.reachability(settings) { report.add(finding) }
        }
        let postfix = PostfixSetupCheck(environment: environment, postconf: postconf).run()
        for finding in postfix.findings { report.add(finding) }

        var socket = SocketProbe(
            file: SocketFileCheck(
                environment: environment, configPath: configPath, daemon: daemon.socket, settings: daemon.settings,
                account: postfix.account),
            greeting: GreetingCheck(
                environment: environment, configPath: configPath, daemon: daemon.socket, timeout: greetingTimeout))
        var advice = MainCFAdvice()
        if let services = postfix.services {
            let smtpd = SMTPDChecks(
                environment: environment, configPath: configPath, daemon: daemon, postfix: postfix, postconf: postconf)
            var groups: [(ids: [String], findings: [DoctorFinding])] = []
            for service in services {
                let findings = smtpd.run(service, socket: &socket, advice: &advice)
                let id = service.master?.id ?? "main.cf"
                if let i = groups.firstIndex(where: { $0.findings == findings }) {
                    groups[i].ids.append(id)
                } else {
                    groups.append(([id], findings))
                }
            }
            for group in groups {
                let prefix = groups.count > 1 ? "\(group.ids.joined(separator: ", ")): " : ""
                for finding in group.findings { report.add(finding, prefix: prefix) }
            }
        } else {
            // Without Postfix's configuration the daemon's side can still be checked.
            for finding in socket.run(daemon.socket.path, chrootRoot: nil).findings { report.add(finding) }
        }
        advice.write(
            to: &report, socketPath: daemon.socket.path, queueDirectory: postfix.queueDirectory, postconf: postconf)
        return report
    }
}

/// The checks of one smtpd service, in the order they are printed.
struct SMTPDChecks {
    let environment: any DoctorEnvironment
    let configPath: String
    let daemon: DaemonSetup
    let postfix: PostfixSetup
    let postconf: PostconfFix

    func run(_ service: SMTPDService, socket: inout SocketProbe, advice: inout MainCFAdvice) -> [DoctorFinding] {
        let path = SASLPathCheck(
            daemon: daemon.socket, queueDirectory: postfix.queueDirectory,
            compatibilityLevel: postfix.compatibilityLevel, configPath: configPath, postconf: postconf
        ).run(service)
        let probe = socket.run(path.socketPath, chrootRoot: path.chrootRoot)
        let offered = MechanismList(
            advertised: probe.mechanisms, configured: daemon.settings.mechanisms, configPath: configPath)
        let tls = PostfixTLSPosture.from(service.value) { file in
            if case .success = environment.status(file) { return true }
            return false
        }
        let mechanisms = MechanismCheck(configPath: configPath, postconf: postconf).run(
            service, tls: tls, offered: offered)
        advice.brokenSecurityOptions.formUnion(mechanisms.broken)
        let tlsPolicy = TLSPolicyCheck(postconf: postconf, cleartextRequiresTLS: daemon.settings.cleartextRequiresTLS)
            .run(service, tls: tls, mechanisms: offered.mechanisms)
        if !tls.tlsPossible { advice.needsCertificate = true }
        return path.findings + probe.findings + mechanisms.findings + [tlsPolicy]
    }
}

/// The socket checks for one path: done once, however many services use the same socket, so the
/// daemon is asked for its greeting once and those services show the same findings.
struct SocketProbe {
    let file: SocketFileCheck
    let greeting: GreetingCheck
    private var done: [String: (findings: [DoctorFinding], mechanisms: [DoctorMechanism]?)] = [:]

    init(file: SocketFileCheck, greeting: GreetingCheck) {
        self.file = file
        self.greeting = greeting
    }

    mutating func run(_ path: String, chrootRoot: String?) -> (findings: [DoctorFinding], mechanisms: [DoctorMechanism]?) {
        let key = "\(path)|\(chrootRoot ?? "")"
        if let known = done[key] { return known }
        // A TCP endpoint has no file to look at: its greeting is all there is to check.
        var (findings, isSocket) = path.hasPrefix("inet:") ? ([], true) : file.run(path, chrootRoot: chrootRoot)
        var mechanisms: [DoctorMechanism]? = nil
        if isSocket {
            let greeted = greeting.run(path)
            findings.append(greeted.finding)
            mechanisms = greeted.mechanisms
        }
        done[key] = (findings, mechanisms)
        return (findings, mechanisms)
    }
}
