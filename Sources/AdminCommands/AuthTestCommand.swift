public import ArgumentParser

/// `saslgate auth`: talk to a running daemon.
public struct AuthCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Talk to a running saslgated.",
        subcommands: [AuthTestCommand.self]
    )

    public init() {}
}

/// `saslgate auth test [--socket PATH] [--mech plain|login] [--rip IP] [--service S] [--secured] [--password-stdin] USER`
public struct AuthTestCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run one authentication against the daemon, like `doveadm auth test`.",
        discussion: "Exit status: 0 authenticated, 1 refused by the server, 2 any other error (no socket, protocol error, timeout)."
    )

    /// Where the daemon listens by default (the systemd socket unit's path).
    public static let defaultSocket = "/run/saslgated/auth-client"

    @Option(name: .long, help: ArgumentHelp("The daemon's auth socket.", valueName: "path"))
    public var socket: String = AuthTestCommand.defaultSocket

    @Option(name: .long, help: "The SASL mechanism: plain or login.")
    public var mech: MechanismArgument = .plain

    @Option(name: .long, help: ArgumentHelp("Remote IP to report (rip=).", valueName: "ip"))
    public var rip: String?

    @Option(name: .long, help: ArgumentHelp("Service to report (service=).", valueName: "service"))
    public var service: String = "smtp"

    @Flag(name: .long, help: "Say the connection is secured (TLS).")
    public var secured = false

    @Flag(name: .long, help: "Read the password from the first line of standard input instead of asking on the terminal.")
    public var passwordStdin = false

    @Argument(help: "The user to authenticate.")
    public var user: String

    public init() {}

    public enum MechanismArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
        case plain
        case login

        public init?(argument: String) {
            self.init(rawValue: argument.lowercased())
        }

        var mechanism: AuthTestRequest.Mechanism { self == .plain ? .plain : .login }
    }

    public var request: AuthTestRequest {
        AuthTestRequest(socketPath: socket, mechanism: mech.mechanism, user: user, service: service, remoteIP: rip, secured: secured)
    }

    public func run() throws {
        try AuthTestCommand.test(request, passwordFromStandardInput: passwordStdin, io: CommandIO.current)
    }

    /// Reads the password, runs the exchange, prints the one-line verdict; throws exit 1 on FAIL.
    public static func test(_ request: AuthTestRequest, passwordFromStandardInput: Bool, io: CommandIO) throws(CLIError) {
        let password = try PasswordInput.existingPassword(fromStandardInput: passwordFromStandardInput, io: io)
        let outcome = try AuthClient.run(request, password: password)
        io.out(outcome.summary)
        if case .failed = outcome { throw CLIError("", exitCode: ExitStatus.refused) }
    }
}
