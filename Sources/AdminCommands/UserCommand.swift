public import ArgumentParser

/// `saslgate user`: manage the passwd-file table.
public struct UserCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, change, delete or list users of the passwd-file table.",
        subcommands: [UserAddCommand.self, UserPasswdCommand.self, UserDelCommand.self, UserListCommand.self]
    )

    public init() {}
}
