import AuthCore
import CSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed SQLite call: the (extended) result code and SQLite's message. Never contains bound values.
struct SQLiteError: Error, Sendable, CustomStringConvertible {
    var operation: String
    /// Extended result code (`SQLITE_BUSY_SNAPSHOT`, `SQLITE_CONSTRAINT_PRIMARYKEY`, ...).
    var code: Int32
    var message: String

    /// The primary result code (`SQLITE_BUSY`, `SQLITE_CONSTRAINT`, ...).
    var primaryCode: Int32 { code & 0xFF }

    var isBusy: Bool { primaryCode == SQLITE_BUSY || primaryCode == SQLITE_LOCKED }
    var isNotADatabase: Bool { primaryCode == SQLITE_NOTADB }
    var isCorrupt: Bool { primaryCode == SQLITE_CORRUPT }

    var description: String { "\(operation): \(message) (SQLite code \(code))" }
}

/// One SQLite connection. Not thread-safe by itself (opened with `SQLITE_OPEN_NOMUTEX`): whoever holds
/// it uses it from one thread at a time; the passdb's pool hands each connection to one caller at a
/// time, the editor uses one per command. Hence `@unchecked Sendable`.
final class SQLiteConnection: @unchecked Sendable {
    enum Mode {
        /// The daemon: never writes, never creates.
        case readOnly
        /// The CLI: reads and writes an existing file (the editor creates it first, with its mode).
        case readWrite
    }

    let path: String
    let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]

    init(path: String, mode: Mode, busyTimeoutMilliseconds: Int32) throws(SQLiteError) {
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= mode == .readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(operation: "open", code: rc, message: message)
        }
        self.path = path
        self.handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
    }

    deinit {
        statements.removeAll()  // finalize before closing
        sqlite3_close_v2(handle)
    }

    private func error(_ operation: String, _ rc: Int32) -> SQLiteError {
        SQLiteError(operation: operation, code: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs SQL without results (several statements allowed). Never pass secrets here: use bound statements.
    func execute(_ sql: String) throws(SQLiteError) {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errmsg)
            throw SQLiteError(operation: firstWords(sql), code: sqlite3_extended_errcode(handle), message: message)
        }
    }

    /// A prepared statement, cached per connection by its SQL text.
    func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error("prepare \(firstWords(sql))", rc) }
        let s = SQLiteStatement(handle: stmt, connection: self, sql: sql)
        statements[sql] = s
        return s
    }

    /// The single integer a `PRAGMA name` (or any one-value query) returns.
    func integer(_ sql: String) throws(SQLiteError) -> Int64 {
        let s = try statement(sql)
        defer { s.reset() }
        guard try s.step() else { throw SQLiteError(operation: firstWords(sql), code: SQLITE_ERROR, message: "no result") }
        return s.int64(0)
    }

    /// The single text value a query returns.
    func text(_ sql: String) throws(SQLiteError) -> String? {
        let s = try statement(sql)
        defer { s.reset() }
        guard try s.step() else { return nil }
        return s.text(0)
    }

    func setBusyTimeout(milliseconds: Int32) {
        sqlite3_busy_timeout(handle, milliseconds)
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Keeps `-wal` and `-shm` when the last connection closes, so a reader without write access to the
    /// directory (the daemon) can still open the WAL-mode file.
    func persistWAL() {
        var on: Int32 = 1
        _ = sqlite3_file_control(handle, "main", SQLITE_FCNTL_PERSIST_WAL, &on)
    }

    func makeError(_ operation: String, rc: Int32) -> SQLiteError { error(operation, rc) }
}

/// A prepared statement. Bind, step, read columns, reset. Belongs to its connection's thread discipline.
final class SQLiteStatement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection
    let sql: String

    init(handle: OpaquePointer, connection: SQLiteConnection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Resets and clears bindings (bound blobs are `SQLITE_STATIC`, so they must not outlive the call).
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bind(_ index: Int32, _ text: String) throws(SQLiteError) {
        let rc = sqlite3_bind_text(handle, index, text, -1, sqliteTransient)
        guard rc == SQLITE_OK else { throw connection.makeError("bind", rc: rc) }
    }

    func bind(_ index: Int32, _ value: Int64) throws(SQLiteError) {
        let rc = sqlite3_bind_int64(handle, index, value)
        guard rc == SQLITE_OK else { throw connection.makeError("bind", rc: rc) }
    }

    /// Binds `bytes` without SQLite copying them (`SQLITE_STATIC`): only valid until `reset()`, so the
    /// caller steps and resets inside the buffer's lifetime.
    func bindStatic(_ index: Int32, _ bytes: UnsafeBufferPointer<UInt8>) throws(SQLiteError) {
        // A zero-length blob needs a non-nil pointer, or SQLite binds NULL.
        let rc: Int32
        if let base = bytes.baseAddress, !bytes.isEmpty {
            rc = sqlite3_bind_blob(handle, index, base, Int32(bytes.count), nil)
        } else {
            rc = sqlite3_bind_zeroblob(handle, index, 0)
        }
        guard rc == SQLITE_OK else { throw connection.makeError("bind", rc: rc) }
    }

    /// True when a row is available, false when done.
    func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.makeError(firstWords(sql), rc: rc)
        }
    }

    /// Steps a statement that returns no rows.
    func run() throws(SQLiteError) {
        while try step() {}
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func text(_ column: Int32) -> String? {
        guard let p = sqlite3_column_text(handle, column) else { return nil }
        let n = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// The column's bytes copied straight into a wiping `Secret`.
    func secret(_ column: Int32) -> Secret {
        let n = Int(sqlite3_column_bytes(handle, column))
        guard n > 0, let p = sqlite3_column_blob(handle, column) else { return Secret([UInt8]()) }
        return Secret(UnsafeRawBufferPointer(start: p, count: n).bindMemory(to: UInt8.self))
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the value at bind time (for names, never for secrets).
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The first words of a statement, for error messages (never bound values: they are not in the text).
private func firstWords(_ sql: String) -> String {
    let words = sql.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).prefix(3)
    return words.joined(separator: " ")
}

/// SQLite's library version, e.g. `3.40.1`.
var sqliteLibraryVersion: String { String(cString: sqlite3_libversion()) }
