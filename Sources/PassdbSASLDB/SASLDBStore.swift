import AuthCore
import CSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The store file: one SQLite database in WAL mode with the table
///
///     CREATE TABLE sasldb (authid TEXT, realm TEXT, property TEXT, value BLOB,
///                          PRIMARY KEY (authid, realm, property)) WITHOUT ROWID
///
/// keyed like Cyrus sasldb2 (authentication id, realm, property) → value, plus an index on `property`
/// (which kinds of secret exist, for the advertised mechanisms), and since schema version 2 the table
/// `app_passwords` (`appPasswordsSQL`). `PRAGMA application_id` is `sgdb` and `user_version` the schema
/// version, so a foreign SQLite file is never taken for a store. A version 1 store is read as it is
/// (no app passwords) and migrated to version 2 by the first writer that opens it (`openWriter`).
///
/// Concurrency and crash safety come from SQLite: the daemon reads through read-only connections while
/// CLI commands write, each command in one `BEGIN IMMEDIATE` transaction with `synchronous=FULL`,
/// waiting for each other through `busy_timeout`. A killed writer leaves an uncommitted WAL tail that
/// the next connection ignores. Writers keep the `-wal` and `-shm` files (`SQLITE_FCNTL_PERSIST_WAL`)
/// so a daemon without write access to the directory can still open the file read-only.
enum SASLDBStore {
    /// `PRAGMA application_id`: "sgdb".
    static let applicationID: Int64 = 0x7367_6462
    /// `PRAGMA user_version` of the schema this code writes and reads.
    static let schemaVersion: Int64 = 2
    /// The oldest schema version this code still reads (and migrates when it writes).
    static let oldestReadableVersion: Int64 = 1
    /// Mode of a store the editor creates (before the umask).
    static let newFileMode: mode_t = 0o640

    static let schemaSQL = """
        CREATE TABLE sasldb (
            authid   TEXT NOT NULL CHECK (length(authid) > 0),
            realm    TEXT NOT NULL CHECK (realm NOT GLOB '*[A-Z]*'),
            property TEXT NOT NULL,
            value    BLOB NOT NULL,
            PRIMARY KEY (authid, realm, property)
        ) WITHOUT ROWID;
        CREATE INDEX sasldb_property ON sasldb (property);
        \(appPasswordsSQL)
        PRAGMA application_id = \(applicationID);
        PRAGMA user_version = \(schemaVersion);
        """

    /// Schema version 2: app passwords, each a name, a hash (`{SCHEME}value`), the services it may be
    /// used for (space-separated, lower case; empty: every service), Unix times of creation, expiry
    /// (NULL: never) and last use, and the last client address.
    static let appPasswordsSQL = """
        CREATE TABLE app_passwords (
            authid    TEXT NOT NULL CHECK (length(authid) > 0),
            realm     TEXT NOT NULL CHECK (realm NOT GLOB '*[A-Z]*'),
            name      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
            hash      BLOB NOT NULL,
            services  TEXT NOT NULL,
            created   INTEGER NOT NULL,
            expires   INTEGER,
            last_used INTEGER,
            last_ip   TEXT,
            PRIMARY KEY (authid, realm, name)
        ) WITHOUT ROWID;
        """

    static let selectUserSQL = "SELECT property, value FROM sasldb WHERE authid = ?1 AND realm = ?2"
    static let existsUserSQL = "SELECT EXISTS (SELECT 1 FROM sasldb WHERE authid = ?1 AND realm = ?2)"
    static let countUserSQL = "SELECT count(*) FROM sasldb WHERE authid = ?1 AND realm = ?2"
    static let insertSQL = "INSERT INTO sasldb (authid, realm, property, value) VALUES (?1, ?2, ?3, ?4)"
    static let deleteUserSQL = "DELETE FROM sasldb WHERE authid = ?1 AND realm = ?2"
    static let listSQL = "SELECT authid, realm, property FROM sasldb ORDER BY realm, authid, property"
    static let propertyExistsSQL = "SELECT EXISTS (SELECT 1 FROM sasldb WHERE property = ?1)"

    // MARK: the file

    /// What `stat` says about the store file.
    struct FileStatus: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var mode: UInt32
        /// Problems that do not stop the open (world-readable), for the log or the CLI's stderr.
        var warnings: [String]
        /// `openWriter` created the file just now.
        var created = false
    }

    /// Checks the store file: it exists, is a regular file, is not world-writable (refused) and not
    /// world-readable (a warning). Follows symbolic links.
    static func checkFile(path: String) throws(SASLDBError) -> FileStatus {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            if e == ENOENT { throw .storeMissing(path: path) }
            throw .io(path: path, operation: "stat", reason: errnoText(e))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw .notAStore(path: path, reason: "not a regular file")
        }
        let mode = UInt32(st.st_mode)
        if mode & 0o002 != 0 {
            throw .insecurePermissions(path: path, mode: mode, problem: "every local user can write it (and so add themselves)")
        }
        var warnings: [String] = []
        if mode & 0o004 != 0 {
            warnings.append(
                "\(path) has mode \(String(mode & 0o7777, radix: 8)): every local user can read the password hashes; "
                    + "fix it with `chmod 640 \(path)`")
        }
        return FileStatus(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), mode: mode, warnings: warnings)
    }

    /// Creates an empty store file with mode 0640 (less the umask) when none exists. Returns true if it
    /// created one. A concurrent creator is fine: whoever comes second opens the same file.
    @discardableResult
    static func createIfMissing(path: String) throws(SASLDBError) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, newFileMode)
        if fd >= 0 {
            close(fd)
            return true
        }
        let e = errno
        if e == EEXIST { return false }
        if e == ENOENT {
            throw .io(path: path, operation: "create", reason: "the directory \(directory(of: path)) does not exist; create it first")
        }
        throw .io(path: path, operation: "create", reason: errnoText(e))
    }

    // MARK: connections

    /// A connection for one CLI command: creates the file when `create` (else a missing file is
    /// `storeMissing`), checks its mode, switches to WAL, `synchronous=FULL`, `secure_delete`, and
    /// creates the schema in a fresh file. Returns the file's warnings too.
    static func openWriter(
        path: String, create: Bool, busyTimeoutMilliseconds: Int32
    ) throws(SASLDBError) -> (SQLiteConnection, FileStatus) {
        let created = create ? try createIfMissing(path: path) : false
        var status = try checkFile(path: path)
        status.created = created
        let c: SQLiteConnection
        do {
            c = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        } catch {
            throw .from(error, path: path)
        }
        c.persistWAL()
        try retryingBusy(path: path, timeoutMilliseconds: busyTimeoutMilliseconds) { () throws(SQLiteError) in
            try c.execute("PRAGMA trusted_schema = OFF; PRAGMA secure_delete = ON; PRAGMA synchronous = FULL")
            let mode = try c.text("PRAGMA journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw SQLiteError(operation: "PRAGMA journal_mode", code: SQLITE_ERROR, message: "cannot switch to WAL mode (got \(mode ?? "nothing"))")
            }
            try c.execute("PRAGMA journal_size_limit = 4194304")
        }
        try ensureSchema(c, path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        return (c, status)
    }

    /// A read-only connection (the daemon): never creates or changes anything; the file must already be a
    /// store.
    static func openReader(path: String, busyTimeoutMilliseconds: Int32) throws(SASLDBError) -> SQLiteConnection {
        let c: SQLiteConnection
        do {
            c = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
            try c.execute("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON")
        } catch {
            throw .from(error, path: path)
        }
        do {
            try checkSchema(c, path: path, allowEmpty: false)
        } catch {
            if case .database(_, let operation, _) = error, !FileIdentityProbe.exists(path + "-shm") {
                // A WAL-mode file needs its -shm (and -wal) file; a reader that may not write the
                // directory cannot create them.
                throw .database(
                    path: path, operation: operation,
                    message: "cannot read the WAL-mode store without \(path)-wal and \(path)-shm, and cannot create them "
                        + "(no write access to \(directory(of: path))); run any `saslgate user` command on it as root, which "
                        + "creates both with the store's owner and mode and keeps them, or let the daemon's group write the directory")
            }
            throw error
        }
        return c
    }

    /// Refuses a file that is not this schema. With `allowEmpty`, a fresh file (no tables, no ids) is
    /// fine and reported as `false`; a store is `true`.
    @discardableResult
    static func checkSchema(_ c: SQLiteConnection, path: String, allowEmpty: Bool) throws(SASLDBError) -> Bool {
        let app: Int64
        let version: Int64
        let tables: Int64
        // One statement, so one snapshot: read separately, another command creating the schema at the same
        // moment could commit between the reads (tables already there, application_id not yet).
        do throws(SQLiteError) {
            let s = try c.statement(
                "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version), "
                    + "(SELECT count(*) FROM sqlite_master)")
            defer { s.reset() }
            guard try s.step() else {
                throw SQLiteError(operation: "read the schema ids", code: SQLITE_ERROR, message: "no result")
            }
            app = s.int64(0)
            version = s.int64(1)
            tables = s.int64(2)
        } catch {
            throw .from(error, path: path)
        }
        if app == applicationID {
            if (oldestReadableVersion...schemaVersion).contains(version) { return true }
            if version > schemaVersion {
                throw .notAStore(path: path, reason: "it was written by a newer saslgate (schema version \(version), this one knows \(schemaVersion)); use that version")
            }
            throw .notAStore(path: path, reason: "unknown schema version \(version)")
        }
        if app == 0 && version == 0 && tables == 0 {
            if allowEmpty { return false }
            throw .notAStore(path: path, reason: "the file is empty; add a user with `saslgate user add --db sasldb:\(path) USER`")
        }
        throw .notAStore(
            path: path, reason: "it is a SQLite database of another application (application_id \(app)); give the path of a saslgate store")
    }

    private static func ensureSchema(_ c: SQLiteConnection, path: String, busyTimeoutMilliseconds: Int32) throws(SASLDBError) {
        if try checkSchema(c, path: path, allowEmpty: true) {
            try migrate(c, path: path)
            return
        }
        // A fresh file: create the schema unless another command did in the meantime.
        try inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            if try checkSchema(c, path: path, allowEmpty: true) { return }
            do throws(SQLiteError) {
                try c.execute(schemaSQL)
            } catch {
                throw .from(error, path: path)
            }
        }
    }

    /// The schema version of an existing store (`PRAGMA user_version`).
    static func version(_ c: SQLiteConnection, path: String) throws(SASLDBError) -> Int64 {
        do {
            return try c.integer("PRAGMA user_version")
        } catch {
            throw .from(error, path: path)
        }
    }

    /// Brings an older store to `schemaVersion` in one transaction (whoever writes first migrates;
    /// the others find it done): version 1 → 2 adds `app_passwords`. Readers of either version keep
    /// working throughout.
    static func migrate(_ c: SQLiteConnection, path: String) throws(SASLDBError) {
        guard try version(c, path: path) < schemaVersion else { return }
        try inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            let current = try version(c, path: path)
            guard current < schemaVersion else { return }
            do throws(SQLiteError) {
                if current < 2 { try c.execute(appPasswordsSQL) }
                try c.execute("PRAGMA user_version = \(schemaVersion)")
            } catch {
                throw .from(error, path: path)
            }
        }
    }

    /// Runs `body` in `BEGIN IMMEDIATE` ... `COMMIT`: the write lock is taken first (waiting up to the
    /// busy timeout for other writers), and any error rolls everything back.
    static func inWriteTransaction<T>(
        _ c: SQLiteConnection, path: String, _ body: () throws(SASLDBError) -> T
    ) throws(SASLDBError) -> T {
        do {
            try c.execute("BEGIN IMMEDIATE")
        } catch {
            throw .from(error, path: path)
        }
        do throws(SASLDBError) {
            let result = try body()
            do {
                try c.execute("COMMIT")
            } catch {
                throw SASLDBError.from(error, path: path)
            }
            return result
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }

    /// Retries `body` on SQLITE_BUSY for setup statements (switching the journal mode of a fresh file
    /// races with other commands opening it), for at most the busy timeout.
    private static func retryingBusy(
        path: String, timeoutMilliseconds: Int32, _ body: () throws(SQLiteError) -> Void
    ) throws(SASLDBError) {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutMilliseconds))
        while true {
            do {
                try body()
                return
            } catch {
                guard error.isBusy, ContinuousClock.now < deadline else { throw .from(error, path: path) }
                usleep(10_000)
            }
        }
    }

    // MARK: queries

    /// Every row of one user, with properties this code knows; unknown properties are returned as nil.
    static func rows(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> [(SASLDBProperty?, Secret)] {
        let s = try c.statement(selectUserSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        var out: [(SASLDBProperty?, Secret)] = []
        while try s.step() {
            out.append((s.text(0).flatMap(SASLDBProperty.init(rawValue:)), s.secret(1)))
        }
        return out
    }

    static func exists(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> Bool {
        let s = try c.statement(existsUserSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        guard try s.step() else { return false }
        return s.int64(0) != 0
    }

    static func count(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> Int {
        let s = try c.statement(countUserSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        guard try s.step() else { return 0 }
        return Int(s.int64(0))
    }

    /// Inserts one row; returns the number of rows SQLite says it inserted (1 unless something is wrong).
    static func insert(_ c: SQLiteConnection, user: SASLDBUser, row: SASLDBRow) throws(SQLiteError) -> Int {
        let s = try c.statement(insertSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        try s.bind(3, row.property.rawValue)
        let result = row.value.withBytes { bytes -> Result<Void, SQLiteError> in
            defer { s.reset() }  // drop the static binding while `bytes` is alive
            do throws(SQLiteError) {
                try s.bindStatic(4, bytes)
                try s.run()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        return c.changes
    }

    /// Replaces one property's value only if it still is `old` (compare-and-swap); returns the rows
    /// changed (0: the value changed meanwhile or the row is gone).
    static func replace(
        _ c: SQLiteConnection, user: SASLDBUser, property: SASLDBProperty, old: Secret, new: Secret
    ) throws(SQLiteError) -> Int {
        let s = try c.statement(
            "UPDATE sasldb SET value = ?4 WHERE authid = ?1 AND realm = ?2 AND property = ?3 AND value = ?5")
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        try s.bind(3, property.rawValue)
        let result = new.withBytes { n in
            old.withBytes { o -> Result<Void, SQLiteError> in
                defer { s.reset() }  // drop the static bindings while the buffers are alive
                do throws(SQLiteError) {
                    try s.bindStatic(4, n)
                    try s.bindStatic(5, o)
                    try s.run()
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
        }
        try result.get()
        return c.changes
    }

    static func delete(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> Int {
        let s = try c.statement(deleteUserSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        try s.run()
        return c.changes
    }

    /// The distinct known properties present in the store (one indexed probe per property).
    static func propertiesPresent(_ c: SQLiteConnection) throws(SQLiteError) -> Set<SASLDBProperty> {
        var out = Set<SASLDBProperty>()
        for p in SASLDBProperty.allCases {
            let s = try c.statement(propertyExistsSQL)
            defer { s.reset() }
            try s.bind(1, p.rawValue)
            if try s.step(), s.int64(0) != 0 { out.insert(p) }
        }
        return out
    }
}

func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
