public import ArgumentParser

/// `saslgate user add [--file PATH | --db sasldb:PATH [-u REALM] [--mechs LIST] | -c CONFIG] [--scheme S] [--password-stdin] USER`
public struct UserAddCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a user; the password is asked twice on the terminal (or read from --password-stdin)."
    )

    @OptionGroup public var table: TableOptions
    @OptionGroup public var password: PasswordOptions
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String

    public init() {}

    public func run() throws {
        let location = try table.resolve()
        switch location.kind {
        case .sasldb:
            try SASLDBUserActions.add(user: user, table: location, password: password, io: CommandIO.current)
        case .passwdFile:
            try password.requirePasswdFileCompatible()
            try UserActions.add(
                user: user, table: location, scheme: password.scheme.scheme,
                passwordFromStandardInput: password.passwordStdin,
                io: CommandIO.current
            )
        }
    }
}
