public import ArgumentParser
import AuthConfig
import AuthCore
import AuthEngine
import Passdb

/// `saslgate auth`: talk to a running daemon.
public struct AuthCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Talk to a running saslgated.",
        subcommands: [AuthTestCommand.self]
    )

    public init() {}
}

/// `saslgate auth test [--socket PATH|inet:HOST:PORT] [--mech plain|login] [--rip IP] [--service S] [--secured] [--password-stdin] USER`
public struct AuthTestCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run one authentication against the daemon, like `doveadm auth test`.",
        discussion:
            "Exit status: 0 authenticated, 1 refused by the server, 2 any other error (no socket, protocol error, timeout)."
    )

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The daemon's auth socket path or a plain TCP endpoint inet:HOST:PORT (default: the first socket of 'listen' in the configuration, else \(ConfigLookup.defaultListen)).",
            valueName: "path"
        )
    )
    public var socket: String?

    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp(
            "The daemon's configuration, for its socket (default: \(ConfigLookup.defaultPath)).", valueName: "config")
    )
    public var config: String?

    @Option(name: .long, help: "The SASL mechanism: plain or login.")
    public var mech: AuthTestRequest.Mechanism = .plain

    @Option(name: .long, help: ArgumentHelp("Remote IP to report (rip=).", valueName: "ip"))
    public var rip: String?

    @Option(name: .long, help: ArgumentHelp("Service to report (service=).", valueName: "service"))
    public var service: String = "smtp"

    @Flag(name: .long, help: "Say the connection is secured (TLS).")
    public var secured = false

    @Flag(
        name: .long, help: "Read the password from the first line of standard input instead of asking on the terminal.")
    public var passwordStdin = false

    @Flag(
        name: .long,
        help: "Show how the login name is normalized (default_realm, realms, username_lowercase, username_chars) and which passdb answered.")
    public var explain = false

    @Argument(help: "The user to authenticate.")
    public var user: String

    public init() {}

    /// The socket: `--socket`, else `listen` of `--config` (which must be readable), else `listen` of the
    /// default configuration if it is readable, else the daemon's built-in default.
    public func socketPath() throws(CLIError) -> String {
        if let socket { return socket }
        if let config { return try ConfigLookup.load(path: config).listenPath }
        if let lookup = try? ConfigLookup.load(path: ConfigLookup.defaultPath) { return lookup.listenPath }
        return ConfigLookup.defaultListen
    }

    public func makeRequest() throws(CLIError) -> AuthTestRequest {
        var request = AuthTestRequest(
            socketPath: try socketPath(), mechanism: mech, user: user, service: service, remoteIP: rip,
            secured: secured
        )
        request.debug = explain
        return request
    }

    public func run() throws {
        let io = CommandIO.current
        if explain {
            // The daemon's own normalization code, with the daemon's configuration.
            let lookup = try config.map { path throws(CLIError) in try ConfigLookup.load(path: path) }
                ?? (try? ConfigLookup.load(path: ConfigLookup.defaultPath))
            let settings = lookup?.settings ?? Settings()
            io.out("configuration: \(lookup?.path ?? "(none readable; built-in defaults)")")
            for line in AuthTestCommand.explainLines(user: user, settings: settings) { io.out("  \(line)") }
            if lookup != nil {
                for line in AuthTestCommand.lookupLines(user: user, service: service, remoteIP: rip, settings: settings) {
                    io.out("  \(line)")
                }
            }
        }
        try AuthTestCommand.test(makeRequest(), passwordFromStandardInput: passwordStdin, io: io)
    }

    /// How the daemon will normalize `user` under `settings`, step by step.
    public static func explainLines(user: String, settings: Settings) -> [String] {
        let policy = UsernamePolicy(
            defaultRealm: settings.defaultRealm, realms: settings.realms, lowercase: settings.usernameLowercase,
            allowedCharacters: settings.usernameChars)
        let (result, explanation) = policy.explain(user)
        var lines = explanation.steps.map { sanitizeForLog($0, limit: 200) }
        if case .failure(let rejection) = result { lines.append("the daemon refuses this name: \(rejection)") }
        lines.append("passdbs, in order: " + settings.passdbs.map(\.description).joined(separator: " "))
        return lines
    }

    /// What each passdb looks up for the normalized name (the query and its bound values, the filter
    /// and the DN found...), from this process: it needs to read the passdbs' settings.
    public static func lookupLines(user: String, service: String, remoteIP: String?, settings: Settings) -> [String] {
        let policy = UsernamePolicy(
            defaultRealm: settings.defaultRealm, realms: settings.realms, lowercase: settings.usernameLowercase,
            allowedCharacters: settings.usernameChars)
        guard case .success(let normalized) = policy.explain(user).0 else { return [] }
        let request = PassdbRequest(user: normalized, mechanism: "PLAIN", service: service, remoteIP: remoteIP)
        return PassdbProbes.explain(request, settings: settings).map { sanitizeForLog($0, limit: 400) }
    }

    /// Reads the password, runs the exchange, prints the one-line verdict; throws exit 1 on FAIL.
    public static func test(_ request: AuthTestRequest, passwordFromStandardInput: Bool, io: CommandIO) throws(CLIError)
    {
        let password = try PasswordInput.existingPassword(fromStandardInput: passwordFromStandardInput, io: io)
        let (outcome, fields) = try AuthClient.runWithFields(request, password: password)
        io.out(outcome.summary)
        if request.debug {
            io.out("answered by: \(fields["passdb"].map { sanitizeForLog($0, limit: 200) } ?? "no passdb (refused before any lookup, or the user is unknown everywhere)")")
        }
        if case .failed = outcome { throw CLIError("", exitCode: ExitStatus.refused) }
    }
}

/// `--mech plain|login`, in any case; shown in lower case.
extension AuthTestRequest.Mechanism: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.uppercased())
    }

    public var defaultValueDescription: String { rawValue.lowercased() }

    public static var allValueStrings: [String] { allCases.map { $0.rawValue.lowercased() } }
}
