public import ArgumentParser

/// Where the daemon's control socket is: `--control PATH`, else `control_socket` of the configuration.
public struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The daemon's control socket (default: control_socket of the configuration).", valueName: "path"))
    public var control: String?

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp("The daemon's configuration.", valueName: "config"))
    public var config: String?

    public init() {}

    public func socketPath() throws(CLIError) -> String {
        if let control { return control }
        let lookup = try ConfigLookup.load(path: config ?? ConfigLookup.defaultPath)
        guard let path = lookup.settings.controlSocket else {
            throw .failure("\(lookup.path): control_socket is empty (disabled); set it, or give --control PATH")
        }
        return path
    }

    /// Sends one command and returns the whole answer, ready for a terminal (`neutralizingControlCharacters`).
    public func ask(_ command: String) throws(CLIError) -> String {
        let path = try socketPath()
        let deadline = ContinuousClock.now + .seconds(10)
        let connection = try Connection(path: path, deadline: deadline, timeout: .seconds(10))
        defer { connection.close() }
        try connection.send(command + "\n")
        let answer = String(decoding: try connection.readToEnd(), as: UTF8.self).neutralizingControlCharacters()
        if answer.hasPrefix("error:") { throw .failure(answer.trimmingWhiteSpace()) }
        return answer
    }
}

/// `saslgate stats`: the daemon's metrics in the Prometheus text format.
public struct StatsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print the running daemon's metrics (Prometheus text format): requests by result, mechanism and passdb, latency, connections.",
        discussion: "For a Prometheus scrape, use e.g. the node_exporter textfile collector: saslgate stats > /var/lib/prometheus/node-exporter/saslgate.prom")

    @OptionGroup public var options: ControlOptions

    public init() {}

    public func run() throws {
        CommandIO.current.out(try options.ask("STATS").trimmingWhiteSpace())
    }
}

/// `saslgate penalty list|clear`: the brute-force penalty state of the running daemon.
public struct PenaltyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "penalty",
        abstract: "Show or clear the running daemon's brute-force penalties.",
        subcommands: [List.self, Clear.self])

    public init() {}

    public struct List: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "list", abstract: "One line per IP, user or user+IP with recent failures.")
        @OptionGroup public var options: ControlOptions
        public init() {}
        public func run() throws {
            CommandIO.current.out(try options.ask("PENALTY LIST").trimmingWhiteSpace())
        }
    }

    public struct Clear: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "clear", abstract: "Forget the failures of an IP or a user (all, without an argument).")
        @OptionGroup public var options: ControlOptions
        @Argument(help: "An IP address or a user name.") public var target: String?
        public init() {}
        public func run() throws {
            if let target, target.contains(where: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
                throw CLIError.failure("the target may not contain white space")
            }
            CommandIO.current.out(try options.ask("PENALTY CLEAR" + (target.map { " \($0)" } ?? "")).trimmingWhiteSpace())
        }
    }
}

extension String {
    /// Every control character (C0, DEL, C1) except the line feed written as `\xHH`, its code. The
    /// daemon already escapes what clients chose (penalty keys are login names); this keeps an answer
    /// from any daemon, of any version, from driving the terminal.
    func neutralizingControlCharacters() -> String {
        let isControl = { (scalar: Unicode.Scalar) in scalar != "\n" && scalar.properties.generalCategory == .control }
        guard unicodeScalars.contains(where: isControl) else { return self }
        var out = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if isControl(scalar) {
                let hex = String(scalar.value, radix: 16)
                out.append(contentsOf: ("\\x" + (hex.count < 2 ? "0" : "") + hex).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// Without leading and trailing spaces, TABs, CRs and LFs.
    func trimmingWhiteSpace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        return String(self.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
