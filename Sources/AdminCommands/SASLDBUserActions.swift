import AuthCore
import Passdb
import PassdbSASLDB

/// `saslgate user ...` on a sasldb store: strict where saslpasswd2 is lax (add refuses an existing
/// user, del/passwd refuse a missing one, nothing stored is never success), secrets chosen per user.
enum SASLDBUserActions {
    static func user(_ name: String, _ table: TableLocation) throws(CLIError) -> SASLDBUser {
        try run { () throws(SASLDBError) in
            name.contains("@") ? try SASLDBUser(name: name) : try SASLDBUser(name: name, realm: table.defaultRealm)
        }
    }

    static func policy(_ options: PasswordOptions, keepExisting: Bool) throws(CLIError) -> SASLDBSecretPolicy? {
        var kinds: Set<SASLDBProperty> = [.hash]
        if let mechs = options.mechs {
            kinds = try run { () throws(SASLDBError) in try SASLDBProperty.parse(mechanisms: mechs) }
        } else if keepExisting && !options.cleartext {
            return nil  // passwd without --mechs: keep the kinds the user has
        }
        if options.cleartext { kinds.insert(.cleartext) }
        var policy = SASLDBSecretPolicy(kinds: kinds)
        policy.hashScheme = options.scheme.scheme == .plain ? .defaultForNewPasswords : options.scheme.scheme
        return policy
    }

    static func report(_ result: SASLDBEditResult, _ table: TableLocation, io: CommandIO) {
        for w in result.warnings { io.err("warning: \(w)") }
        if result.createdStore {
            io.err("note: created \(table.path) (mode 0640); let the daemon read it: chgrp saslgate \(table.path)")
        }
        if result.droppedCleartext {
            io.err("note: the cleartext password was removed (give --cleartext to keep storing it)")
        }
    }

    static func add(user name: String, table: TableLocation, password options: PasswordOptions, io: CommandIO) throws(CLIError) {
        let user = try user(name, table)
        let editor = SASLDBEditor(path: table.path)
        if try run({ () throws(SASLDBError) in try editor.contains(user) }) {
            throw .refused("user '\(sanitizeForLog(user.description))' already exists in \(table.path); use `saslgate user passwd`")
        }
        let policy = try policy(options, keepExisting: false) ?? SASLDBSecretPolicy()
        if options.cleartext { io.err("warning: --cleartext stores the password in clear text in \(table.path)") }
        let password = try PasswordInput.newPassword(fromStandardInput: options.passwordStdin, io: io)
        let result = try run { () throws(SASLDBError) in try editor.add(user, password: password, policy: policy) }
        report(result, table, io: io)
        io.out("added user '\(sanitizeForLog(user.description))' to \(table.path): \(result.properties.map(\.rawValue).joined(separator: " "))")
    }

    static func setPassword(user name: String, table: TableLocation, password options: PasswordOptions, io: CommandIO) throws(CLIError) {
        let user = try user(name, table)
        let editor = SASLDBEditor(path: table.path)
        guard try run({ () throws(SASLDBError) in try editor.contains(user) }) else {
            throw .refused("user '\(sanitizeForLog(user.description))' is not in \(table.path); add it with `saslgate user add`")
        }
        let policy = try policy(options, keepExisting: true)
        let password = try PasswordInput.newPassword(fromStandardInput: options.passwordStdin, io: io)
        let result = try run { () throws(SASLDBError) in try editor.setPassword(user, password: password, policy: policy) }
        report(result, table, io: io)
        io.out("changed the password of '\(sanitizeForLog(user.description))' in \(table.path): \(result.properties.map(\.rawValue).joined(separator: " "))")
    }

    static func delete(user name: String, table: TableLocation, io: CommandIO) throws(CLIError) {
        let user = try user(name, table)
        let result = try run { () throws(SASLDBError) in try SASLDBEditor(path: table.path).delete(user) }
        report(result, table, io: io)
        io.out("deleted user '\(sanitizeForLog(user.description))' from \(table.path)")
    }

    /// `user@realm: property` lines like sasldblistusers2; never a value.
    static func list(table: TableLocation, io: CommandIO) throws(CLIError) {
        let (entries, warnings) = try run { () throws(SASLDBError) in try SASLDBEditor(path: table.path).listWithWarnings() }
        for w in warnings { io.err("warning: \(w)") }
        for entry in entries { io.out(sanitizeForLog(entry.description, limit: 600)) }
    }

    static func run<T>(_ body: () throws(SASLDBError) -> T) throws(CLIError) -> T {
        do {
            return try body()
        } catch {
            throw CLIError("\(error)", exitCode: error.isRefusal ? ExitStatus.refused : ExitStatus.failure)
        }
    }
}
