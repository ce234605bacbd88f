import AuthCore
public import Passdb

/// The work behind `saslgate user ...`, as plain functions over a table location and a `CommandIO`.
/// Each returns normally on success (after printing one confirmation line) or throws a `CLIError`.
public enum UserActions {
    /// `user add`: refuses an existing user before asking for the password, then again under the lock.
    public static func add(
        user: String, table: TableLocation, scheme: PasswordScheme, passwordFromStandardInput: Bool, io: CommandIO
    ) throws(CLIError) {
        let editor = PasswdFileEditor(path: table.path, defaultRealm: table.defaultRealm)
        try run { () throws(PasswdFileEditError) in try PasswdFileEditor.validateUserName(user) }
        if try run({ () throws(PasswdFileEditError) in try editor.containsUser(user) }) {
            throw .refused(
                "user '\(sanitizeForLog(user))' already exists in \(table.path); use `saslgate user passwd` to change the password"
            )
        }
        let field = try newPasswordField(
            user: user, table: table, scheme: scheme, fromStandardInput: passwordFromStandardInput, io: io)
        try run { () throws(PasswdFileEditError) in try editor.add(user: user, passwordField: field) }
        io.out("added user '\(sanitizeForLog(user))' to \(table.path)")
    }

    /// `user passwd`: refuses a missing user before asking for the password.
    public static func setPassword(
        user: String, table: TableLocation, scheme: PasswordScheme, passwordFromStandardInput: Bool, io: CommandIO
    ) throws(CLIError) {
        let editor = PasswdFileEditor(path: table.path, defaultRealm: table.defaultRealm)
        guard try run({ () throws(PasswdFileEditError) in try editor.containsUser(user) }) else {
            throw .refused("user '\(sanitizeForLog(user))' is not in \(table.path); add it with `saslgate user add`")
        }
        let field = try newPasswordField(
            user: user, table: table, scheme: scheme, fromStandardInput: passwordFromStandardInput, io: io)
        try run { () throws(PasswdFileEditError) in try editor.setPassword(user: user, passwordField: field) }
        io.out("changed the password of '\(sanitizeForLog(user))' in \(table.path)")
    }

    /// `user del`.
    public static func delete(user: String, table: TableLocation, io: CommandIO) throws(CLIError) {
        let editor = PasswdFileEditor(path: table.path, defaultRealm: table.defaultRealm)
        try run { () throws(PasswdFileEditError) in try editor.delete(user: user) }
        io.out("deleted user '\(sanitizeForLog(user))' from \(table.path)")
    }

    /// `user list`: one user name per line, as written in the file. Never a password.
    public static func list(table: TableLocation, io: CommandIO) throws(CLIError) {
        let editor = PasswdFileEditor(path: table.path, defaultRealm: table.defaultRealm)
        for name in try run({ () throws(PasswdFileEditError) in try editor.listUsers() }) {
            io.out(sanitizeForLog(name, limit: 512))
        }
    }

    /// Asks for (or reads) a new password and hashes it.
    static func newPasswordField(
        user: String, table: TableLocation, scheme: PasswordScheme, fromStandardInput: Bool, io: CommandIO
    ) throws(CLIError) -> String {
        let password = try PasswordInput.newPassword(fromStandardInput: fromStandardInput, io: io)
        warnIfClearText(scheme, io: io)
        let qualified = user.contains("@") ? user : table.defaultRealm.map { "\(user)@\($0)" } ?? user
        do {
            return try scheme.hash(password, user: qualified)
        } catch {
            throw .failure("\(error)")
        }
    }

    static func warnIfClearText(_ scheme: PasswordScheme, io: CommandIO) {
        if scheme == .plain {
            io.err("warning: {PLAIN} keeps the password in clear text in the table; prefer the default (yescrypt)")
        }
    }

    /// Runs an editor call, mapping its error to the CLI's (refusals exit 1, the rest 2).
    static func run<T>(_ body: () throws(PasswdFileEditError) -> T) throws(CLIError) -> T {
        do {
            return try body()
        } catch {
            throw CLIError("\(error)", exitCode: error.isRefusal ? ExitStatus.refused : ExitStatus.failure)
        }
    }
}
