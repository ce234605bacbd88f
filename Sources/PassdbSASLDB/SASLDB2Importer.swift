import AuthCore
import Dispatch
import Synchronization

/// A user the import wrote (or, in a dry run, would write).
public struct SASLDB2ImportedUser: Sendable, Equatable, CustomStringConvertible {
    public var user: SASLDBUser
    public var properties: [SASLDBProperty]

    public var description: String {
        "\(sanitizeForLog(user.description, limit: 600)): \(properties.map(\.rawValue).joined(separator: " "))"
    }
}

/// Something in the sasldb2 file that was not imported, and why. Never holds a secret.
public struct SASLDB2Skip: Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// The user has no `userPassword` (only other properties), so no secret can be made.
        case noUserPassword
        /// A property other than `userPassword` (e.g. `cmusaslsecretOTP`): not imported.
        case unknownProperty
        /// The store already has this user; the import never overwrites.
        case alreadyInStore
        /// The named field is not valid UTF-8.
        case invalidUTF8(field: String)
        /// The name cannot be a store key (control characters, too long, ...).
        case invalidUserName(String)
        /// Another entry with the same name once the realm is lower-cased was imported instead.
        case duplicateUser(of: String)
        /// The password cannot be hashed (empty, NUL or line break, too long for crypt).
        case unusablePassword(String)
        /// The record's key is not `authid NUL realm NUL property`.
        case malformedKey

        public var description: String {
            switch self {
            case .noUserPassword: "no userPassword (nothing to make secrets from)"
            case .unknownProperty: "property not imported (only userPassword is)"
            case .alreadyInStore: "already in the store (not overwritten; change it with `saslgate user passwd`)"
            case .invalidUTF8(let field): "the \(field) is not valid UTF-8"
            case .invalidUserName(let why): "invalid user name: \(why)"
            case .duplicateUser(let other): "the same user as \(sanitizeForLog(other)) once the realm is lower-cased"
            case .unusablePassword(let why): "the password cannot be stored: \(why)"
            case .malformedKey: "malformed key (not authid NUL realm NUL property)"
            }
        }
    }

    /// `authid@realm` as in the file (non-printable characters as `?`), or "?" for a malformed key.
    public var user: String
    /// The property concerned, or nil when the whole user was skipped.
    public var property: String?
    public var reason: Reason

    public var description: String {
        if let property { return "\(user) \(property): \(reason)" }
        return "\(user): \(reason)"
    }
}

/// What an import did: the users written and everything skipped, with reasons.
public struct SASLDB2ImportReport: Sendable, Equatable {
    public var source: String
    public var store: String
    public var imported: [SASLDB2ImportedUser]
    public var skipped: [SASLDB2Skip]
    /// Nothing was written (a dry run).
    public var dryRun: Bool
    /// Problems with the store file that did not stop the import (world-readable), for standard error.
    public var warnings: [String]
    /// The import created the store (mode 0640, owned by the caller).
    public var createdStore: Bool = false
}

/// Imports a Cyrus SASL sasldb2 file (Berkeley DB hash, as `saslpasswd2` writes it on Debian) into a
/// saslgate store: every user's `userPassword` (the cleartext) becomes the secrets of `policy` (by
/// default the yescrypt hash, SCRAM-SHA-1, SCRAM-SHA-256, CRAM-MD5 and DIGEST-MD5, and no cleartext).
///
/// The source is opened read-only and never changed. Users already in the store are skipped, never
/// overwritten. All hashing happens first (on every core); then every user is written in ONE
/// transaction: if anything fails, nothing is written.
public struct SASLDB2Importer: Sendable {
    public var sourcePath: String
    public var policy: SASLDBSecretPolicy
    /// How long the write waits for other writers of the store.
    public var busyTimeout: Duration

    public init(sourcePath: String, policy: SASLDBSecretPolicy = .importDefault, busyTimeout: Duration = .seconds(30)) {
        self.sourcePath = sourcePath
        self.policy = policy
        self.busyTimeout = busyTimeout
    }

    /// The Cyrus property that holds the cleartext.
    public static let cyrusPasswordProperty = "userPassword"

    /// A user ready to import: the key and the cleartext.
    struct Candidate: Sendable {
        var user: SASLDBUser
        var password: Secret
    }

    /// Reads the source and decides, per user, what would be imported (no store involved).
    func plan() throws(SASLDBError) -> (candidates: [Candidate], skipped: [SASLDB2Skip]) {
        let contents = try SASLDB2File.read(path: sourcePath)
        var skipped: [SASLDB2Skip] = Array(
            repeating: SASLDB2Skip(user: "?", property: nil, reason: .malformedKey), count: contents.malformedKeys)

        // Group by the raw (authid, realm), keeping the file's order.
        struct RawKey: Hashable {
            var authid: [UInt8]
            var realm: [UInt8]
        }
        var order: [RawKey] = []
        var passwords: [RawKey: Secret] = [:]
        var hasRecords = Set<RawKey>()
        for record in contents.records {
            let key = RawKey(authid: record.authid, realm: record.realm)
            if hasRecords.insert(key).inserted { order.append(key) }
            let property = String(decoding: record.property, as: UTF8.self)
            if property == SASLDB2Importer.cyrusPasswordProperty {
                passwords[key] = record.value
            } else {
                skipped.append(
                    SASLDB2Skip(
                        user: display(record.authid, record.realm), property: sanitizeForLog(property, limit: 100), reason: .unknownProperty))
            }
        }

        var candidates: [Candidate] = []
        var taken: [SASLDBUser: String] = [:]
        for key in order {
            let shown = display(key.authid, key.realm)
            func skip(_ reason: SASLDB2Skip.Reason) { skipped.append(SASLDB2Skip(user: shown, property: nil, reason: reason)) }
            guard let password = passwords[key] else {
                skip(.noUserPassword)
                continue
            }
            guard let authid = String(validating: key.authid, as: UTF8.self) else {
                skip(.invalidUTF8(field: "user name"))
                continue
            }
            guard let realm = String(validating: key.realm, as: UTF8.self) else {
                skip(.invalidUTF8(field: "realm"))
                continue
            }
            guard password.withBytes({ String(validating: $0, as: UTF8.self) != nil }) else {
                skip(.invalidUTF8(field: "password"))
                continue
            }
            let user: SASLDBUser
            do {
                user = try SASLDBUser(authid: authid, realm: realm)
            } catch {
                if case .invalidUserName(_, let why) = error { skip(.invalidUserName(why)) } else { skip(.invalidUserName("\(error)")) }
                continue
            }
            if let first = taken[user] {
                skip(.duplicateUser(of: first))
                continue
            }
            do {
                try SASLDBSecrets.checkStorable(password, policy: policy)
            } catch {
                if case .password(let e) = error, case .passwordNotStorable(let why) = e {
                    skip(.unusablePassword(why))
                } else {
                    skip(.unusablePassword("\(error)"))
                }
                continue
            }
            taken[user] = shown
            candidates.append(Candidate(user: user, password: password))
        }
        return (candidates.sorted { $0.user < $1.user }, skipped)
    }

    /// Imports into the store at `storePath` (created when missing). With `dryRun`, reads both files
    /// and reports what would happen without hashing or writing anything.
    public func run(into storePath: String, dryRun: Bool = false) throws(SASLDBError) -> SASLDB2ImportReport {
        try run(into: storePath, dryRun: dryRun, beforeCommit: nil)
    }

    /// `run`, with a hook called inside the write transaction after every row is inserted and before
    /// `COMMIT` (tests use it to kill the process or fail mid-import).
    func run(
        into storePath: String, dryRun: Bool, beforeCommit: (() throws(SASLDBError) -> Void)?
    ) throws(SASLDBError) -> SASLDB2ImportReport {
        try policy.validate()
        let (candidates, skippedInSource) = try plan()
        var skipped = skippedInSource
        let busy = Int32(clamping: busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000)
        let editor = SASLDBEditor(path: storePath, busyTimeout: busyTimeout)

        // Users already in the store: skipped (checked again inside the transaction).
        let existing = try editor.existing(candidates.map(\.user))
        var fresh: [Candidate] = []
        for candidate in candidates {
            if existing.contains(candidate.user) {
                skipped.append(SASLDB2Skip(user: sanitizeForLog(candidate.user.description, limit: 600), property: nil, reason: .alreadyInStore))
            } else {
                fresh.append(candidate)
            }
        }
        let kinds = policy.kinds.ordered
        if dryRun || fresh.isEmpty {
            let warnings = FileIdentityProbe.exists(storePath) ? (try? SASLDBStore.checkFile(path: storePath).warnings) ?? [] : []
            return SASLDB2ImportReport(
                source: sourcePath, store: storePath,
                imported: dryRun ? fresh.map { SASLDB2ImportedUser(user: $0.user, properties: kinds) } : [],
                skipped: skipped, dryRun: dryRun, warnings: warnings)
        }

        let rows = try SASLDB2Importer.deriveAll(fresh, policy: policy)

        let (c, status) = try SASLDBStore.openWriter(path: storePath, create: true, busyTimeoutMilliseconds: busy)
        let imported = try SASLDBStore.inWriteTransaction(c, path: storePath) { () throws(SASLDBError) -> [SASLDB2ImportedUser] in
            var imported: [SASLDB2ImportedUser] = []
            for (candidate, userRows) in zip(fresh, rows) {
                let present = try editor.sql { () throws(SQLiteError) in try SASLDBStore.exists(c, user: candidate.user) }
                if present {
                    skipped.append(
                        SASLDB2Skip(user: sanitizeForLog(candidate.user.description, limit: 600), property: nil, reason: .alreadyInStore))
                    continue
                }
                try editor.insertVerified(c, user: candidate.user, rows: userRows)
                imported.append(SASLDB2ImportedUser(user: candidate.user, properties: userRows.map(\.property)))
            }
            try beforeCommit?()
            return imported
        }
        return SASLDB2ImportReport(
            source: sourcePath, store: storePath, imported: imported, skipped: skipped, dryRun: false, warnings: status.warnings,
            createdStore: status.created)
    }

    /// Derives every candidate's rows, spread over the cores. The first failure fails the whole import.
    static func deriveAll(_ candidates: [Candidate], policy: SASLDBSecretPolicy) throws(SASLDBError) -> [[SASLDBRow]] {
        let results = Mutex<[Int: Result<[SASLDBRow], SASLDBError>]>([:])
        let workers = Swift.max(1, Swift.min(candidates.count, activeProcessorCount()))
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                guard i < candidates.count else { return }
                let result: Result<[SASLDBRow], SASLDBError>
                do throws(SASLDBError) {
                    result = .success(try SASLDBSecrets.derive(user: candidates[i].user, password: candidates[i].password, policy: policy))
                } catch {
                    result = .failure(error)
                }
                results.withLock { $0[i] = result }
                if case .failure = result { return }
            }
        }
        let all = results.withLock { r in defer { r.removeAll() }; return r }
        var out: [[SASLDBRow]] = []
        out.reserveCapacity(candidates.count)
        for i in 0..<candidates.count {
            guard let r = all[i] else { throw .derivationFailed("the secrets of \(sanitizeForLog(candidates[i].user.description)) (stopped after an earlier error)") }
            switch r {
            case .success(let rows): out.append(rows)
            case .failure(let e): throw e
            }
        }
        return out
    }

    /// `authid@realm` as bytes from the file, shown safely.
    private func display(_ authid: [UInt8], _ realm: [UInt8]) -> String {
        let name = String(decoding: authid, as: UTF8.self) + (realm.isEmpty ? "" : "@" + String(decoding: realm, as: UTF8.self))
        return sanitizeForLog(name, limit: 600)
    }
}

/// Online processors (sysconf).
func activeProcessorCount() -> Int {
    let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    return n > 0 ? n : 1
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
