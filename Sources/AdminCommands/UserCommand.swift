public import ArgumentParser

/// `saslgate user`: manage the users of a store the CLI can edit (`PassdbRegistry.editableDrivers`).
public struct UserCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, change, delete or list users of a passwd-file table or a sasldb store.",
        subcommands: [UserAddCommand.self, UserPasswdCommand.self, UserDelCommand.self, UserListCommand.self]
    )

    public init() {}
}
