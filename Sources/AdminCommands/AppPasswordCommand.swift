public import ArgumentParser

/// `saslgate app-password`: named second passwords of a sasldb store's users, limited to services and
/// a lifetime, for mail clients (docs/APP-PASSWORDS.md).
public struct AppPasswordCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "app-password",
        abstract: "Add, list or revoke app passwords of a sasldb store's users (PLAIN and LOGIN only).",
        subcommands: [AppPasswordAddCommand.self, AppPasswordListCommand.self, AppPasswordRevokeCommand.self]
    )

    public init() {}
}

/// `saslgate app-password add [--db sasldb:PATH] [-u REALM] USER --name NAME [--services smtp,imap] [--expires 90d]`
public struct AppPasswordAddCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Generate an app password (printed once, only its hash is stored).")

    @OptionGroup public var table: TableOptions
    @Option(name: .long, help: ArgumentHelp("Its name (letters, digits, '.', '_', '-'), e.g. phone.", valueName: "name"))
    public var name: String
    @Option(name: .long, help: ArgumentHelp("The services it may be used for, comma-separated (default: every service).", valueName: "list"))
    public var services: String?
    @Option(name: .long, help: ArgumentHelp("Its lifetime, e.g. 90d, 12w, 24h (default: it never expires).", valueName: "duration"))
    public var expires: String?
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String

    public init() {}

    public func run() throws {
        try AppPasswordActions.add(
            user: user, name: name, services: services, expires: expires, table: table.resolve(), io: CommandIO.current)
    }
}

/// `saslgate app-password list [--db sasldb:PATH] [-u REALM] USER`
public struct AppPasswordListCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Print a user's app passwords: name, services, created, expires, last used, last IP; never a secret.")

    @OptionGroup public var table: TableOptions
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String

    public init() {}

    public func run() throws {
        try AppPasswordActions.list(user: user, table: table.resolve(), io: CommandIO.current)
    }
}

/// `saslgate app-password revoke [--db sasldb:PATH] [-u REALM] USER NAME`
public struct AppPasswordRevokeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Delete an app password; the daemon refuses it within a second.")

    @OptionGroup public var table: TableOptions
    @Argument(help: "The user, as user@realm or a bare user.") public var user: String
    @Argument(help: "The app password's name.") public var name: String

    public init() {}

    public func run() throws {
        try AppPasswordActions.revoke(user: user, name: name, table: table.resolve(), io: CommandIO.current)
    }
}
