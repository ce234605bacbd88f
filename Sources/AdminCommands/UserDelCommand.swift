public import ArgumentParser

/// `saslgate user del [--file PATH | -c CONFIG] USER`
public struct UserDelCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a user (its line, or all its secrets in a sasldb store).")

    @OptionGroup public var table: TableOptions
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String

    public init() {}

    public func run() throws {
        let location = try table.resolve()
        switch location.kind {
        case .sasldb: try SASLDBUserActions.delete(user: user, table: location, io: CommandIO.current)
        case .passwdFile: try UserActions.delete(user: user, table: location, io: CommandIO.current)
        }
    }
}
