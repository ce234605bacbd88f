import AuthCore
public import Passdb

/// Why a sasldb store operation or a sasldb2 import did not happen. Descriptions are for the admin:
/// they name the file and the fix, and never contain a password, a hash or any stored secret.
public enum SASLDBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `add` of a user the store already has.
    case userExists(user: String, path: String)
    /// `passwd` / `del` of a user the store does not have (or the store does not exist).
    case userNotFound(user: String, path: String)
    /// The user name or realm cannot be a store key.
    case invalidUserName(String, reason: String)
    /// The store file does not exist (for commands that do not create it, and for the daemon).
    case storeMissing(path: String)
    /// The file exists but is not a saslgate sasldb store (another SQLite database, a Cyrus sasldb2, a
    /// newer schema, ...).
    case notAStore(path: String, reason: String)
    /// The store's permissions let every local user write it (or, for the daemon's check, read it).
    case insecurePermissions(path: String, mode: UInt32, problem: String)
    /// A SQLite call failed.
    case database(path: String, operation: String, message: String)
    /// A system call on a file failed.
    case io(path: String, operation: String, reason: String)
    /// The new password cannot be stored or hashed.
    case password(PasswordSchemeError)
    /// A mechanism secret could not be derived (should not happen).
    case derivationFailed(String)
    /// A write changed fewer rows than it had to: nothing was committed.
    case writeNotApplied(user: String, path: String, detail: String)
    /// `--mechs` names something that is not a mechanism with a stored secret.
    case invalidMechanismList(String)
    /// The hash scheme cannot be used for the store's password hash.
    case unsupportedHashScheme(PasswordScheme)
    /// The Cyrus sasldb2 file cannot be read.
    case sourceUnreadable(path: String, reason: String)
    /// `app-password add` of a name the user already has.
    case appPasswordExists(user: String, name: String, path: String)
    /// `app-password revoke` of a name the user does not have.
    case appPasswordNotFound(user: String, name: String, path: String)
    /// A name, service list or expiry that cannot be stored, or the user has too many app passwords.
    case invalidAppPassword(String)

    /// True for the refusals a CLI reports with exit code 1 (user exists / missing), false for real errors.
    public var isRefusal: Bool {
        switch self {
        case .userExists, .userNotFound, .appPasswordExists, .appPasswordNotFound: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .userExists(let user, let path):
            "user '\(sanitizeForLog(user))' already exists in \(path); use `saslgate user passwd --db sasldb:\(path)` to change the password"
        case .userNotFound(let user, let path):
            "user '\(sanitizeForLog(user))' is not in \(path); see `saslgate user list --db sasldb:\(path)`"
        case .invalidUserName(let user, let reason):
            "invalid user name '\(sanitizeForLog(user))': \(reason)"
        case .storeMissing(let path):
            "\(path) does not exist; create the store with `saslgate user add --db sasldb:\(path) ...` "
                + "or `saslgate import sasldb2 FILE --db sasldb:\(path)`"
        case .notAStore(let path, let reason):
            "\(path) is not a saslgate sasldb store: \(reason)"
        case .insecurePermissions(let path, let mode, let problem):
            "\(path) has mode \(String(mode & 0o7777, radix: 8)), \(problem); fix it with `chmod 640 \(path)` "
                + "(and `chgrp` it to the daemon's group)"
        case .database(let path, let operation, let message):
            "\(path): \(operation) failed: \(message)"
        case .io(let path, let operation, let reason):
            "\(path): \(operation) failed: \(reason)"
        case .password(let e):
            "\(e)"
        case .derivationFailed(let what):
            "could not compute \(what)"
        case .writeNotApplied(let user, let path, let detail):
            "\(path): nothing was stored for '\(sanitizeForLog(user))' (\(detail)); the store is unchanged, try again"
        case .invalidMechanismList(let why):
            "invalid --mechs: \(why)"
        case .unsupportedHashScheme(let s):
            "{\(s)} cannot be the store's password hash; use CRYPT (yescrypt, the default), SHA512-CRYPT, "
                + "SHA256-CRYPT, BLF-CRYPT, SSHA512 or SSHA256"
        case .sourceUnreadable(let path, let reason):
            "\(path): cannot read the Cyrus sasldb2 file: \(reason)"
        case .appPasswordExists(let user, let name, let path):
            "'\(sanitizeForLog(user))' already has an app password named '\(sanitizeForLog(name))' in \(path); revoke it first or choose another name"
        case .appPasswordNotFound(let user, let name, let path):
            "'\(sanitizeForLog(user))' has no app password named '\(sanitizeForLog(name))' in \(path); see `saslgate app-password list --db sasldb:\(path) \(sanitizeForLog(user))`"
        case .invalidAppPassword(let why):
            why
        }
    }
}

extension SASLDBError {
    /// Maps a SQLite failure on `path` to the admin's words (busy, not a database, read-only, corrupt).
    static func from(_ e: SQLiteError, path: String) -> SASLDBError {
        switch e.primaryCode {
        case 26:  // SQLITE_NOTADB
            return .notAStore(
                path: path,
                reason: "not a SQLite database (a Cyrus sasldb2 file? import it with `saslgate import sasldb2 \(path) --db sasldb:NEW_PATH`)"
            )
        case 5, 6:  // SQLITE_BUSY, SQLITE_LOCKED
            return .database(
                path: path, operation: e.operation,
                message: "\(e.message) (another process held the store locked for too long; try again)")
        case 8:  // SQLITE_READONLY
            return .database(
                path: path, operation: e.operation,
                message: "\(e.message) (run the command as a user that may write \(path) and its directory)")
        case 11:  // SQLITE_CORRUPT
            return .database(
                path: path, operation: e.operation,
                message: "\(e.message) (the file is damaged; restore it from a backup, or check it with `sqlite3 \(path) 'PRAGMA integrity_check'`)")
        case 14:  // SQLITE_CANTOPEN
            return .database(
                path: path, operation: e.operation,
                message: "\(e.message) (check that \(path), its -wal and -shm files and its directory are accessible)")
        default:
            return .database(path: path, operation: e.operation, message: "\(e.message) (SQLite code \(e.code))")
        }
    }
}
