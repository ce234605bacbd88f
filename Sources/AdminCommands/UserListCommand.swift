public import ArgumentParser

/// `saslgate user list [--file PATH | -c CONFIG]`
public struct UserListCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Print the user names, one per line.")

    @OptionGroup public var table: TableOptions

    public init() {}

    public func run() throws {
        try UserActions.list(table: table.resolve(), io: CommandIO.current)
    }
}
