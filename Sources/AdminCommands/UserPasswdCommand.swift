public import ArgumentParser

/// `saslgate user passwd [--file PATH | -c CONFIG] [--scheme S] [--password-stdin] USER`
public struct UserPasswdCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Set a user's password; the other fields of the user's line are kept."
    )

    @OptionGroup public var table: TableOptions
    @OptionGroup public var password: PasswordOptions
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String

    public init() {}

    public func run() throws {
        let location = try table.resolve()
        switch location.kind {
        case .sasldb:
            try SASLDBUserActions.setPassword(user: user, table: location, password: password, io: CommandIO.current)
        case .passwdFile:
            try password.requirePasswdFileCompatible()
            try UserActions.setPassword(
                user: user, table: location, scheme: password.scheme.scheme,
                passwordFromStandardInput: password.passwordStdin,
                io: CommandIO.current
            )
        }
    }
}
