public import ArgumentParser
import Passdb

/// `saslgate pw [--scheme S] [--password-stdin] [--user USER]`: print a hash to paste into the table.
public struct PwCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "pw",
        abstract: "Hash a password for the table, e.g. {CRYPT}$y$...; nothing is written."
    )

    @OptionGroup public var password: PasswordOptions

    @Option(name: .long, help: ArgumentHelp("The user (user@realm), needed by DIGEST-MD5 only.", valueName: "user"))
    public var user: String?

    public init() {}

    public func run() throws {
        try PwCommand.hash(
            scheme: password.scheme.scheme, user: user, fromStandardInput: password.passwordStdin, io: CommandIO.current
        )
    }

    /// Reads a new password and prints its `{SCHEME}value` field.
    public static func hash(scheme: PasswordScheme, user: String?, fromStandardInput: Bool, io: CommandIO)
        throws(CLIError)
    {
        if scheme == .digestMD5 && (user ?? "").isEmpty {
            throw .failure("{DIGEST-MD5} hashes user:realm:password; give --user user@realm")
        }
        let password = try PasswordInput.newPassword(fromStandardInput: fromStandardInput, io: io)
        UserActions.warnIfClearText(scheme, io: io)
        do {
            io.out(try scheme.hash(password, user: user))
        } catch {
            throw .failure("\(error)")
        }
    }
}
