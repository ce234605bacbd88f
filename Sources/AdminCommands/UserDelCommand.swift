public import ArgumentParser

/// `saslgate user del [--file PATH | -c CONFIG] USER`
public struct UserDelCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a user's line.")

    @OptionGroup public var table: TableOptions
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String

    public init() {}

    public func run() throws {
        try UserActions.delete(user: user, table: table.resolve(), io: CommandIO.current)
    }
}
