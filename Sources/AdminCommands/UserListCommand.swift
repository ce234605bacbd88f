public import ArgumentParser

/// `saslgate user list [--file PATH | -c CONFIG]`
public struct UserListCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Print the users, one per line (sasldb: user@realm: property, like sasldblistusers2); never a secret.")

    @OptionGroup public var table: TableOptions

    public init() {}

    public func run() throws {
        let location = try table.resolve()
        switch location.kind {
        case .sasldb: try SASLDBUserActions.list(table: location, io: CommandIO.current)
        case .passwdFile: try UserActions.list(table: location, io: CommandIO.current)
        }
    }
}
