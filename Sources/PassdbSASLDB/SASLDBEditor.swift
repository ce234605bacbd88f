public import AuthCore
import Passdb

/// What an editor command did, for the CLI's confirmation lines. Never holds a secret.
public struct SASLDBEditResult: Sendable, Equatable {
    public var user: SASLDBUser
    /// Properties written (`add`, `passwd`) or removed (`del`).
    public var properties: [SASLDBProperty]
    /// `passwd` without explicit kinds dropped a stored cleartext (`--cleartext` keeps it).
    public var droppedCleartext: Bool
    /// Problems with the file that did not stop the command (world-readable), for standard error.
    public var warnings: [String]
    /// The command created the store (mode 0640, owned by the caller): the daemon's group must be
    /// given read access (`chgrp`) to the file and its `-wal` and `-shm`.
    public var createdStore: Bool = false
}

/// One line of `list`: a user and one of its properties, never a value.
public struct SASLDBListEntry: Sendable, Hashable, CustomStringConvertible {
    public var authid: String
    public var realm: String
    public var property: String

    /// `user@realm: property` like `sasldblistusers2` (`user: property` for a bare name), with
    /// non-printable characters shown as `?`.
    public var description: String {
        let name = realm.isEmpty ? authid : "\(authid)@\(realm)"
        return "\(sanitizeForLog(name, limit: 600)): \(sanitizeForLog(property, limit: 100))"
    }
}

/// The store editor behind `saslgate user add|passwd|del|list --db sasldb:PATH`.
///
/// Every command is one SQLite transaction (`BEGIN IMMEDIATE`, `synchronous=FULL`): it either happens
/// completely or not at all, even when the process is killed, and concurrent commands wait for each
/// other (up to `busyTimeout`) instead of failing. Password hashing (yescrypt, PBKDF2) runs before the
/// transaction, so the write lock is held for milliseconds. Row counts are checked before `COMMIT`: a
/// command that would store nothing fails and changes nothing.
///
/// A new store is created with mode 0640 (less the umask); a world-writable one is refused and a
/// world-readable one is reported in `warnings`.
public struct SASLDBEditor: Sendable {
    public let path: String
    /// How long a command waits for another writer before failing.
    public var busyTimeout: Duration

    public init(path: String, busyTimeout: Duration = .seconds(30)) {
        self.path = path
        self.busyTimeout = busyTimeout
    }

    var busyMillisecondsValue: Int32 { busyMilliseconds }

    private var busyMilliseconds: Int32 {
        let ms = busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }

    // MARK: commands

    /// Adds `user` with the secrets `policy` asks for (the hash always). Refuses a user that exists.
    /// Creates the store when there is none.
    @discardableResult
    public func add(_ user: SASLDBUser, password: Secret, policy: SASLDBSecretPolicy = .hashOnly) throws(SASLDBError) -> SASLDBEditResult {
        try add(user, password: password, policy: policy, beforeCommit: nil)
    }

    /// `add` with a hook run inside the transaction, after the rows are written and before `COMMIT`
    /// (tests kill the process there).
    func add(
        _ user: SASLDBUser, password: Secret, policy: SASLDBSecretPolicy, beforeCommit: (() throws(SASLDBError) -> Void)?
    ) throws(SASLDBError) -> SASLDBEditResult {
        try policy.validate()
        try SASLDBSecrets.checkStorable(password, policy: policy)
        // Refuse early (before the slow hashing) when the user is already there; checked again below.
        if FileIdentityProbe.exists(path), try contains(user) { throw .userExists(user: user.description, path: path) }
        let rows = try SASLDBSecrets.derive(user: user, password: password, policy: policy)
        let (c, status) = try SASLDBStore.openWriter(path: path, create: true, busyTimeoutMilliseconds: busyMilliseconds)
        try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            if try sql({ () throws(SQLiteError) in try SASLDBStore.exists(c, user: user) }) {
                throw .userExists(user: user.description, path: path)
            }
            try insertVerified(c, user: user, rows: rows)
            try beforeCommit?()
        }
        return SASLDBEditResult(
            user: user, properties: rows.map(\.property), droppedCleartext: false, warnings: status.warnings,
            createdStore: status.created)
    }

    /// Replaces every secret of `user` with new ones for `password`. `policy: nil` keeps the kinds the
    /// user has now, except cleartext (pass a policy with `.cleartext` to keep it). Refuses a missing user.
    @discardableResult
    public func setPassword(_ user: SASLDBUser, password: Secret, policy: SASLDBSecretPolicy? = nil) throws(SASLDBError) -> SASLDBEditResult {
        try (policy ?? .hashOnly).validate()
        try SASLDBSecrets.checkStorable(password, policy: policy ?? .hashOnly)
        guard FileIdentityProbe.exists(path) else { throw .userNotFound(user: user.description, path: path) }
        guard try contains(user) else { throw .userNotFound(user: user.description, path: path) }
        let current = try properties(of: user)
        var droppedCleartext = false
        let effective: SASLDBSecretPolicy
        if let policy {
            effective = policy
        } else {
            var kinds = Set(current)
            if kinds.contains(.cleartext) {
                kinds.remove(.cleartext)
                droppedCleartext = true
            }
            effective = SASLDBSecretPolicy(kinds: kinds)
        }
        let rows = try SASLDBSecrets.derive(user: user, password: password, policy: effective)
        let (c, status) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: busyMilliseconds)
        try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            let removed = try sql { () throws(SQLiteError) in try SASLDBStore.delete(c, user: user) }
            guard removed > 0 else { throw .userNotFound(user: user.description, path: path) }
            try insertVerified(c, user: user, rows: rows)
        }
        scrubOldVersions(c)
        return SASLDBEditResult(user: user, properties: rows.map(\.property), droppedCleartext: droppedCleartext, warnings: status.warnings)
    }

    /// Deletes every row of `user`. Refuses a missing user (or a missing store).
    @discardableResult
    public func delete(_ user: SASLDBUser) throws(SASLDBError) -> SASLDBEditResult {
        guard FileIdentityProbe.exists(path) else { throw .userNotFound(user: user.description, path: path) }
        let (c, status) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: busyMilliseconds)
        let removed = try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) -> [SASLDBProperty] in
            let rows = try sql { () throws(SQLiteError) in try SASLDBStore.rows(c, user: user) }
            let count = try sql { () throws(SQLiteError) in try SASLDBStore.delete(c, user: user) }
            guard count > 0 else { throw .userNotFound(user: user.description, path: path) }
            _ = try sql { () throws(SQLiteError) in try SASLDBAppPasswords.deleteAll(c, user: user) }
            guard count == rows.count else {
                throw .writeNotApplied(user: user.description, path: path, detail: "deleted \(count) of \(rows.count) rows")
            }
            return rows.compactMap(\.0)
        }
        scrubOldVersions(c)
        return SASLDBEditResult(user: user, properties: removed, droppedCleartext: false, warnings: status.warnings)
    }

    /// Every (user, property) in the store, sorted by realm, user and property. Never a value.
    public func list() throws(SASLDBError) -> [SASLDBListEntry] {
        try listWithWarnings().entries
    }

    /// `list` and the file's warnings.
    public func listWithWarnings() throws(SASLDBError) -> (entries: [SASLDBListEntry], warnings: [String]) {
        let status = try SASLDBStore.checkFile(path: path)
        let entries = try reading(empty: []) { c throws(SQLiteError) -> [SASLDBListEntry] in
            let s = try c.statement(SASLDBStore.listSQL)
            defer { s.reset() }
            var out: [SASLDBListEntry] = []
            while try s.step() {
                out.append(SASLDBListEntry(authid: s.text(0) ?? "", realm: s.text(1) ?? "", property: s.text(2) ?? ""))
            }
            return out
        }
        return (entries, status.warnings)
    }

    /// The users in the store (each once), sorted.
    public func users() throws(SASLDBError) -> [SASLDBUser] {
        var seen = Set<SASLDBUser>()
        var out: [SASLDBUser] = []
        for e in try list() {
            let u = SASLDBUser(unchecked: e.authid, realm: e.realm)
            if seen.insert(u).inserted { out.append(u) }
        }
        return out
    }

    /// True if the store has any row for `user`. A missing store has no users.
    public func contains(_ user: SASLDBUser) throws(SASLDBError) -> Bool {
        guard FileIdentityProbe.exists(path) else { return false }
        return try reading(empty: false) { c throws(SQLiteError) in try SASLDBStore.exists(c, user: user) }
    }

    /// Which of `users` the store has, through one read-only connection.
    public func existing(_ users: [SASLDBUser]) throws(SASLDBError) -> Set<SASLDBUser> {
        guard FileIdentityProbe.exists(path), !users.isEmpty else { return [] }
        return try reading(empty: []) { c throws(SQLiteError) -> Set<SASLDBUser> in
            var out = Set<SASLDBUser>()
            for user in users where try SASLDBStore.exists(c, user: user) { out.insert(user) }
            return out
        }
    }

    /// The known properties stored for `user` (empty when the user is missing).
    public func properties(of user: SASLDBUser) throws(SASLDBError) -> [SASLDBProperty] {
        guard FileIdentityProbe.exists(path) else { return [] }
        let found = try reading(empty: []) { c throws(SQLiteError) in try SASLDBStore.rows(c, user: user).compactMap(\.0) }
        return SASLDBProperty.allCases.filter(found.contains)
    }

    // MARK: helpers

    /// After secrets were replaced or deleted: copies the WAL into the file and truncates it, so the old
    /// values (already zeroed in the pages by `secure_delete`) do not linger in old WAL frames. Best
    /// effort: waits at most two seconds for readers, and a failure changes nothing (the write is
    /// committed either way).
    func scrubOldVersions(_ c: SQLiteConnection) {
        c.setBusyTimeout(milliseconds: 2000)
        try? c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Inserts `rows` and checks that exactly that many rows now exist for the user.
    func insertVerified(_ c: SQLiteConnection, user: SASLDBUser, rows: [SASLDBRow]) throws(SASLDBError) {
        guard !rows.isEmpty else { throw .writeNotApplied(user: user.description, path: path, detail: "no secrets to store") }
        for row in rows {
            let n = try sql { () throws(SQLiteError) in try SASLDBStore.insert(c, user: user, row: row) }
            guard n == 1 else {
                throw .writeNotApplied(user: user.description, path: path, detail: "inserting \(row.property) changed \(n) rows")
            }
        }
        let total = try sql { () throws(SQLiteError) in try SASLDBStore.count(c, user: user) }
        guard total == rows.count else {
            throw .writeNotApplied(user: user.description, path: path, detail: "\(total) rows after writing \(rows.count)")
        }
    }

    /// Runs a query on a read-only connection; `empty` for a fresh file that has no schema yet.
    func reading<T>(empty: T, _ body: (SQLiteConnection) throws(SQLiteError) -> T) throws(SASLDBError) -> T {
        let c: SQLiteConnection
        do {
            c = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: busyMilliseconds)
        } catch {
            throw .from(error, path: path)
        }
        guard try SASLDBStore.checkSchema(c, path: path, allowEmpty: true) else { return empty }
        return try sql { () throws(SQLiteError) in try body(c) }
    }

    func sql<T>(_ body: () throws(SQLiteError) -> T) throws(SASLDBError) -> T {
        do {
            return try body()
        } catch {
            throw .from(error, path: path)
        }
    }
}

/// `access(F_OK)` without opening anything.
enum FileIdentityProbe {
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
