public import ArgumentParser

/// The root of the `saslgate` admin CLI.
public struct SaslgateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "saslgate",
        abstract: "Administer saslgated: users, password hashes, test authentications, statistics and penalties.",
        discussion:
            "Exit status: 0 done, 1 refused (user exists / missing, authentication failed), 2 usage or other errors.",
        subcommands: [
            UserCommand.self, PwCommand.self, AuthCommand.self, ImportCommand.self, DoctorCommand.self,
            StatsCommand.self, PenaltyCommand.self, AppPasswordCommand.self,
        ]
    )

    public init() {}
}

/// The process entry: parse, run, map every outcome to an exit code (0 ok, 1 refused, 2 usage/other).
public enum SaslgateMain {
    /// Runs `saslgate` with `arguments` (without the program name) and returns the exit status.
    /// Output goes through `CommandIO.current`.
    public static func run(arguments: [String]) -> Int32 {
        let io = CommandIO.current
        do {
            var command = try SaslgateCommand.parseAsRoot(arguments)
            try command.run()
            return ExitStatus.ok
        } catch let error as CLIError {
            if !error.message.isEmpty { io.err("saslgate: \(error.message)") }
            return error.exitCode
        } catch let error as ExitCode {
            return error.rawValue
        } catch {
            let message = SaslgateCommand.fullMessage(for: error)
            if SaslgateCommand.exitCode(for: error) == .success {
                io.out(message)  // --help, --version
                return ExitStatus.ok
            }
            io.err(message)
            return ExitStatus.failure
        }
    }
}
