public import ArgumentParser
import AuthConfig

/// `saslgate doctor [-c CONFIG] [--postfix-config DIR] [--systemd-dir DIR]`: checks that Postfix will
/// really reach saslgated and get a mechanism list it can use, and prints the main.cf lines to use.
public struct DoctorCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check that Postfix and saslgated fit together, and say how to fix what does not.",
        discussion: """
            Reads saslgated's configuration, the installed systemd units and Postfix's configuration (with \
            postconf), looks at the socket Postfix will use (path, chroot, permissions for mail_owner, a real \
            greeting), runs the advertised mechanisms through Postfix's SASL filters and checks the TLS policy. \
            Prints one line per check (ok / warning / FAIL, with the fix) and the main.cf lines to use. \
            Run it as root: the socket normally sits in a directory only postfix may enter.

            Exit status: 0 no FAIL (warnings allowed), 1 at least one FAIL, 2 usage errors.
            """
    )

    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp("saslgated's configuration.", valueName: "config"))
    public var config: String = ConfigLookup.defaultPath

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Postfix's configuration directory, asked with postconf -c.",
            valueName: "dir"))
    public var postfixConfig: String = DoctorChecker.defaultPostfixDirectory

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Where saslgated.socket and saslgated.service are installed.",
            valueName: "dir"))
    public var systemdDir: String = DoctorChecker.defaultSystemdDirectory

    public init() {}

    public func run() throws {
        let io = CommandIO.current
        let daemonConfig: Result<Settings, CLIError>
        do throws(CLIError) {
            daemonConfig = .success(try ConfigLookup.load(path: config).settings)
        } catch {
            daemonConfig = .failure(error)
        }
        var checker = DoctorChecker(
            environment: SystemDoctorEnvironment(), configPath: config, daemonConfig: daemonConfig,
            postfixDirectory: postfixConfig, systemdDirectory: systemdDir)
        checker.probePassdbs = true
        let report = checker.run()
        for line in report.output { io.out(line) }
        if report.failed { throw CLIError("", exitCode: ExitStatus.refused) }
    }
}
