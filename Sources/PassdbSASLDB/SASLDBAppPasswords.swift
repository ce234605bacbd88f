public import AuthCore
public import Passdb

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One app password as `list` shows it: never the secret nor its hash.
public struct AppPasswordInfo: Sendable, Equatable {
    public var name: String
    /// Lower-case service names (`smtp`, `imap`); empty: every service.
    public var services: [String]
    /// Unix seconds.
    public var created: Int64
    /// Unix seconds; nil: never expires.
    public var expires: Int64?
    public var lastUsed: Int64?
    public var lastIP: String?

    public init(
        name: String, services: [String], created: Int64, expires: Int64?, lastUsed: Int64? = nil, lastIP: String? = nil
    ) {
        self.name = name
        self.services = services
        self.created = created
        self.expires = expires
        self.lastUsed = lastUsed
        self.lastIP = lastIP
    }

    /// Not expired at `now` (Unix seconds).
    public func isLive(at now: Int64) -> Bool { expires.map { $0 > now } ?? true }

    /// May be used for `service` (`service=` of the request, compared in lower case).
    public func allows(service: String) -> Bool { services.isEmpty || services.contains(service.lowercased()) }
}

/// App passwords of the sasldb store (schema version 2, table `app_passwords`): generation of the
/// secret, checks of names and services, and the SQL the editor and the passdb share.
///
/// An app password is a second password of one user with a name, optionally limited to services and
/// to a lifetime. Only its hash is stored (in the scheme of the user's main hash); it serves PLAIN and
/// LOGIN only: no CRAM-MD5, DIGEST-MD5 or SCRAM secret is ever derived from it, so it never unlocks a
/// challenge-response mechanism.
public enum SASLDBAppPasswords {
    /// Most app passwords one user may have (each failed login hashes each candidate once).
    public static let maxPerUser = 16
    public static let maxNameLength = 64
    public static let maxServices = 16
    /// The alphabet of generated passwords: lower-case letters and digits (36 symbols).
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
    /// 4 groups of 4 symbols: 16 × log2(36) ≈ 82.7 bits.
    public static let groups = 4
    public static let groupLength = 4

    /// A fresh password `xxxx-xxxx-xxxx-xxxx` from `SecureRandom`, each symbol uniform (rejection
    /// sampling, no modulo bias).
    public static func generate() -> Secret {
        var symbols: [UInt8] = []
        symbols.reserveCapacity(groups * (groupLength + 1))
        let limit = UInt8(256 - 256 % alphabet.count)  // 252: bytes below it map uniformly
        while symbols.count < groups * groupLength + (groups - 1) {
            var random = SecureRandom.bytes(32)
            defer { random.wipe() }
            for b in random where b < limit {
                if symbols.count % (groupLength + 1) == groupLength { symbols.append(UInt8(ascii: "-")) }
                symbols.append(alphabet[Int(b) % alphabet.count])
                if symbols.count == groups * groupLength + (groups - 1) { break }
            }
        }
        defer { symbols.wipe() }
        return Secret(symbols)
    }

    /// True if `password` has the form `generate` makes (`xxxx-xxxx-xxxx-xxxx`). Only such passwords are
    /// checked against the app passwords, so an ordinary wrong password costs one hash, not one per app
    /// password (the form says nothing about any stored secret).
    public static func looksGenerated(_ password: Secret) -> Bool {
        password.withBytes { p in
            guard p.count == groups * groupLength + groups - 1 else { return false }
            for (i, b) in p.enumerated() {
                if i % (groupLength + 1) == groupLength {
                    guard b == UInt8(ascii: "-") else { return false }
                } else if !alphabet.contains(b) {
                    return false
                }
            }
            return true
        }
    }

    /// Checks a name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
    public static func validateName(_ name: String) throws(SASLDBError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength else {
            throw .invalidAppPassword("an app password name has 1 to \(maxNameLength) characters")
        }
        func ok(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
        }
        guard bytes.allSatisfy(ok), ok(bytes[0]), bytes[0] != 0x2E, bytes[0] != 0x5F, bytes[0] != 0x2D else {
            throw .invalidAppPassword(
                "app password name '\(sanitizeForLog(name))' may only contain letters, digits, '.', '_' and '-' and must start with a letter or digit")
        }
    }

    /// `smtp,imap` (commas or spaces) → `["imap", "smtp"]`; empty: every service.
    public static func parseServices(_ text: String) throws(SASLDBError) -> [String] {
        let words = text.split(whereSeparator: { $0 == "," || $0 == " " }).map { $0.lowercased() }
        guard words.count <= maxServices else { throw .invalidAppPassword("at most \(maxServices) services") }
        for w in words {
            guard w.utf8.count <= 32, w.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
                throw .invalidAppPassword("service '\(sanitizeForLog(w))' must be a word like smtp, submission or imap")
            }
        }
        return Array(Set(words)).sorted()
    }

    // MARK: SQL

    static let insertSQL =
        "INSERT INTO app_passwords (authid, realm, name, hash, services, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    static let listSQL =
        "SELECT name, services, created, expires, last_used, last_ip FROM app_passwords WHERE authid = ?1 AND realm = ?2 ORDER BY name"
    static let candidatesSQL =
        "SELECT name, hash, services, expires FROM app_passwords WHERE authid = ?1 AND realm = ?2 ORDER BY name LIMIT \(maxPerUser)"
    static let countSQL = "SELECT count(*) FROM app_passwords WHERE authid = ?1 AND realm = ?2"
    static let deleteSQL = "DELETE FROM app_passwords WHERE authid = ?1 AND realm = ?2 AND name = ?3"
    static let deleteAllSQL = "DELETE FROM app_passwords WHERE authid = ?1 AND realm = ?2"
    static let touchSQL =
        "UPDATE app_passwords SET last_used = max(coalesce(last_used, 0), ?4), last_ip = ?5 WHERE authid = ?1 AND realm = ?2 AND name = ?3"

    static func list(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> [AppPasswordInfo] {
        let s = try c.statement(listSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        var out: [AppPasswordInfo] = []
        while try s.step() {
            out.append(
                AppPasswordInfo(
                    name: s.text(0) ?? "", services: (s.text(1) ?? "").split(separator: " ").map(String.init),
                    created: s.int64(2), expires: s.isNull(3) ? nil : s.int64(3), lastUsed: s.isNull(4) ? nil : s.int64(4),
                    lastIP: s.text(5)))
        }
        return out
    }

    /// A stored app password for verification.
    struct Candidate: Sendable {
        var name: String
        var hash: Secret
        var services: [String]
        var expires: Int64?
    }

    static func candidates(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> [Candidate] {
        let s = try c.statement(candidatesSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        var out: [Candidate] = []
        while try s.step() {
            out.append(
                Candidate(
                    name: s.text(0) ?? "", hash: s.secret(1), services: (s.text(2) ?? "").split(separator: " ").map(String.init),
                    expires: s.isNull(3) ? nil : s.int64(3)))
        }
        return out
    }

    static func count(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> Int {
        let s = try c.statement(countSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        guard try s.step() else { return 0 }
        return Int(s.int64(0))
    }

    static func deleteAll(_ c: SQLiteConnection, user: SASLDBUser) throws(SQLiteError) -> Int {
        let s = try c.statement(deleteAllSQL)
        defer { s.reset() }
        try s.bind(1, user.authid)
        try s.bind(2, user.realm)
        try s.run()
        return c.changes
    }

    /// Checks a stored candidate against `password`; the hash value is a `{SCHEME}value` field.
    static func verify(_ password: Secret, candidate: Candidate, user: SASLDBUser) -> PasswordVerification {
        SASLDBSecrets.verify(password, property: .hash, value: candidate.hash, user: user)
    }

    /// Now as Unix seconds.
    public static func now() -> Int64 { Int64(time(nil)) }
}

/// What `addAppPassword` made: the secret (print it once, then drop it) and the file's warnings.
public struct AppPasswordCreated: Sendable {
    public var password: Secret
    public var info: AppPasswordInfo
    public var warnings: [String]
}

extension SASLDBEditor {
    /// Adds an app password named `name` to an existing `user`: generates it, hashes it in the scheme
    /// of the user's main hash (yescrypt when that is not a hash the store can write), and stores only
    /// the hash, in one transaction. Refuses a missing user, a name the user has, more than
    /// `SASLDBAppPasswords.maxPerUser`.
    public func addAppPassword(
        _ user: SASLDBUser, name: String, services: [String], expires: Int64?, now: Int64 = SASLDBAppPasswords.now()
    ) throws(SASLDBError) -> AppPasswordCreated {
        try SASLDBAppPasswords.validateName(name)
        if let expires, expires <= now { throw .invalidAppPassword("the expiry lies in the past") }
        guard FileIdentityProbe.exists(path), try contains(user) else { throw .userNotFound(user: user.description, path: path) }
        let scheme = try hashScheme(of: user)
        let password = SASLDBAppPasswords.generate()
        let field: String
        do {
            field = try scheme.hash(password)
        } catch {
            throw .password(error)
        }
        let hash = Secret(Array(field.utf8))
        let (c, status) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: busyMillisecondsValue)
        let info = AppPasswordInfo(name: name, services: services, created: now, expires: expires)
        try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            guard try sql({ () throws(SQLiteError) in try SASLDBStore.exists(c, user: user) }) else {
                throw .userNotFound(user: user.description, path: path)
            }
            let existing = try sql { () throws(SQLiteError) in try SASLDBAppPasswords.list(c, user: user) }
            if existing.contains(where: { $0.name == name }) {
                throw .appPasswordExists(user: user.description, name: name, path: path)
            }
            guard existing.count < SASLDBAppPasswords.maxPerUser else {
                throw .invalidAppPassword(
                    "'\(sanitizeForLog(user.description))' has \(existing.count) app passwords, the most allowed; revoke one first")
            }
            try sql { () throws(SQLiteError) in
                let s = try c.statement(SASLDBAppPasswords.insertSQL)
                defer { s.reset() }
                try s.bind(1, user.authid)
                try s.bind(2, user.realm)
                try s.bind(3, name)
                try s.bind(5, services.joined(separator: " "))
                try s.bind(6, now)
                if let expires { try s.bind(7, expires) }
                let result = hash.withBytes { bytes -> Result<Void, SQLiteError> in
                    defer { s.reset() }
                    do throws(SQLiteError) {
                        try s.bindStatic(4, bytes)
                        try s.run()
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                try result.get()
            }
            guard c.changes == 1 else {
                throw .writeNotApplied(user: user.description, path: path, detail: "the app password row was not inserted")
            }
        }
        return AppPasswordCreated(password: password, info: info, warnings: status.warnings)
    }

    /// The app passwords of `user`, sorted by name (empty for a store without any). Never a secret.
    public func appPasswords(of user: SASLDBUser) throws(SASLDBError) -> [AppPasswordInfo] {
        guard FileIdentityProbe.exists(path) else { throw .userNotFound(user: user.description, path: path) }
        return try reading(empty: []) { c throws(SQLiteError) -> [AppPasswordInfo] in
            guard try c.integer("PRAGMA user_version") >= 2 else { return [] }
            return try SASLDBAppPasswords.list(c, user: user)
        }
    }

    /// Deletes the app password `name` of `user` at once (the daemon notices within its check interval).
    public func revokeAppPassword(_ user: SASLDBUser, name: String) throws(SASLDBError) {
        guard FileIdentityProbe.exists(path) else { throw .appPasswordNotFound(user: user.description, name: name, path: path) }
        let (c, _) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: busyMillisecondsValue)
        try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            let removed = try sql { () throws(SQLiteError) -> Int in
                let s = try c.statement(SASLDBAppPasswords.deleteSQL)
                defer { s.reset() }
                try s.bind(1, user.authid)
                try s.bind(2, user.realm)
                try s.bind(3, name)
                try s.run()
                return c.changes
            }
            guard removed == 1 else { throw .appPasswordNotFound(user: user.description, name: name, path: path) }
        }
        scrubOldVersions(c)
    }

    /// The scheme of the user's main hash when the store can write it, else the default (yescrypt).
    func hashScheme(of user: SASLDBUser) throws(SASLDBError) -> PasswordScheme {
        let rows = try reading(empty: []) { c throws(SQLiteError) in try SASLDBStore.rows(c, user: user) }
        guard let value = rows.first(where: { $0.0 == .hash })?.1 else { return .defaultForNewPasswords }
        let field = value.withBytes { String(decoding: $0, as: UTF8.self) }
        guard let stored = try? StoredPassword(field: field), SASLDBSecretPolicy.hashSchemes.contains(stored.scheme) else {
            return .defaultForNewPasswords
        }
        return stored.scheme
    }
}
