public import AuthCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One problem in a passwd-file, reported as `path:line: message`. Never contains a password or hash.
public struct PasswdFileProblem: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    /// 1-based line number.
    public var line: Int
    public var message: String

    public init(path: String, line: Int, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String { "\(path):\(line): \(message)" }
}

/// Why a passwd-file could not be loaded.
public enum PasswdFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file cannot be opened or read.
    case unreadable(path: String, reason: String)
    /// The file has malformed lines or duplicate users; it is rejected as a whole. `problems` holds at most
    /// `PasswdFile.maxReportedProblems`, `total` counts them all.
    case invalid(path: String, problems: [PasswdFileProblem], total: Int)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return
                "\(path): cannot read the user table: \(reason); check the path and that the daemon's user may read it"
        case .invalid(let path, let problems, let total):
            var lines = problems.map(\.description)
            if total > problems.count { lines.append("\(path): ... and \(total - problems.count) more problems") }
            lines.append("\(path): \(total) problem\(total == 1 ? "" : "s"); the file was not loaded")
            return lines.joined(separator: "\n")
        }
    }

    /// The per-line problems, empty for `.unreadable`.
    public var problems: [PasswdFileProblem] {
        if case .invalid(_, let problems, _) = self { return problems }
        return []
    }
}

/// A parsed passwd-file (Dovecot-compatible): an immutable, realm-keyed user table.
///
/// Format, one user per line: `user[@realm]:{SCHEME}secret[:uid:gid:gecos:home:shell:extra_fields]`.
/// Lines starting with `#` are comments; blank lines are skipped; a final line without a newline is
/// parsed like any other; a trailing CR is ignored. A bare `user` belongs to `defaultRealm` (when set).
/// Realms match case-insensitively (keys are `local@realm` with the realm lower-cased), local parts
/// case-sensitively. Malformed lines and duplicate users make the whole file invalid; every problem is
/// reported with its line.
///
/// The file's bytes are kept in one wiping buffer; entries are offsets into it, so a million users load
/// with a few allocations per line.
public final class PasswdFile: Sendable {
    /// At most this many problems are kept in an error (all are counted).
    public static let maxReportedProblems = 200
    /// Offsets are 32-bit: larger files are refused.
    public static let maxFileSize = Int(UInt32.max) - 1

    public let path: String
    /// Lower-cased default realm, nil when bare names stay bare.
    public let defaultRealm: String?
    /// Lines worth a log message that did not stop the load (weak or unknown crypt methods).
    public let warnings: [PasswdFileProblem]
    /// Credential kinds the entries can give, for `PassdbCapabilities`.
    public let credentialSchemes: Set<CredentialScheme>
    /// The file's stat at the time it was read (nil for tables parsed from memory).
    public let identity: FileIdentity?

    let storage: WipingBuffer
    let records: [Record]
    let index: [String: Int32]

    /// One entry: byte offsets into `storage`.
    struct Record: Sendable {
        var lineStart: UInt32
        /// End of the line's content (before `\r\n` or `\n`).
        var lineEnd: UInt32
        /// End of the user name; the password field starts one byte later.
        var userEnd: UInt32
        /// Start of the value after `{SCHEME}`.
        var valueStart: UInt32
        var fieldEnd: UInt32
        var line: UInt32
        var scheme: PasswordScheme
    }

    private init(
        path: String, defaultRealm: String?, storage: WipingBuffer, records: [Record], index: [String: Int32],
        warnings: [PasswdFileProblem], credentialSchemes: Set<CredentialScheme>, identity: FileIdentity?
    ) {
        self.path = path
        self.defaultRealm = defaultRealm
        self.storage = storage
        self.records = records
        self.index = index
        self.warnings = warnings
        self.credentialSchemes = credentialSchemes
        self.identity = identity
    }

    /// Number of users.
    public var count: Int { records.count }

    // MARK: loading

    /// Reads and parses `path`. Throws `.unreadable` or `.invalid` (with every problem's line).
    public static func load(path: String, defaultRealm: String? = nil) throws(PasswdFileError) -> PasswdFile {
        let (buffer, identity) = try readFile(path: path)
        return try make(storage: buffer, path: path, defaultRealm: defaultRealm, identity: identity)
    }

    /// Parses bytes that are not (or not yet) a file; `path` is used in messages.
    public static func parse<C: Collection>(
        contents: C, path: String, defaultRealm: String? = nil
    ) throws(PasswdFileError) -> PasswdFile where C.Element == UInt8 {
        try make(storage: WipingBuffer(copying: contents), path: path, defaultRealm: defaultRealm, identity: nil)
    }

    static func readFile(path: String) throws(PasswdFileError) -> (WipingBuffer, FileIdentity) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: path, reason: errnoText(errno)) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .unreadable(path: path, reason: errnoText(errno)) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(path: path, reason: "not a regular file") }
        guard Int(st.st_size) <= maxFileSize else { throw .unreadable(path: path, reason: "larger than 4 GiB") }
        let buffer: WipingBuffer
        do {
            buffer = try WipingBuffer.read(fd: fd, sizeHint: Int(st.st_size))
        } catch {
            throw .unreadable(path: path, reason: error.description)
        }
        guard buffer.count <= maxFileSize else { throw .unreadable(path: path, reason: "larger than 4 GiB") }
        var identity = FileIdentity(st)
        // The file changed while it was read (an in-place edit): what was read may be half old, half new.
        // Keep the identity seen before the read and mark it, so the next check reads the file again.
        var after = stat()
        if fstat(fd, &after) != 0 || FileIdentity(after) != identity { identity.unsettled = true }
        // Timestamps have the kernel's coarse granularity: a second write within the same tick as the
        // one we read after would leave size, mtime and ctime as they are. A file read within a second
        // of its last change is therefore read again at the next check (once it has been quiet).
        if identity.changedWithin(seconds: 1) { identity.unsettled = true }
        return (buffer, identity)
    }

    private static func make(
        storage: WipingBuffer, path: String, defaultRealm: String?, identity: FileIdentity?
    ) throws(PasswdFileError) -> PasswdFile {
        let realm = normalizedDefaultRealm(defaultRealm)
        let outcome = Parser.parse(storage.bytes, path: path, defaultRealm: realm)
        guard outcome.problems.isEmpty else {
            throw .invalid(path: path, problems: outcome.problems, total: outcome.problemCount)
        }
        return PasswdFile(
            path: path, defaultRealm: realm, storage: storage, records: outcome.records, index: outcome.index,
            warnings: outcome.warnings, credentialSchemes: outcome.credentialSchemes, identity: identity
        )
    }

    static func normalizedDefaultRealm(_ realm: String?) -> String? {
        guard let realm, !realm.isEmpty else { return nil }
        return realm.lowercased()
    }

    // MARK: lookups

    /// The table key for a login name: `local@realm` with the realm lower-cased; a bare name gets the
    /// default realm, if any. Splits at the last `@`, like `PassdbRequest`.
    public func key(forUser user: String) -> String {
        PasswdFile.key(forUser: user, defaultRealm: defaultRealm)
    }

    static func key(forUser user: String, defaultRealm: String?) -> String {
        let (local, realm) = LoginName.split(user)
        if let realm { return String(local) + "@" + realm.lowercased() }
        if let defaultRealm { return user + "@" + defaultRealm }
        return user
    }

    /// The key for a request: its local part and (lower-cased) realm, or the default realm.
    public func key(for request: PassdbRequest) -> String {
        if let realm = request.realm { return request.localPart + "@" + realm }
        if let defaultRealm { return request.localPart + "@" + defaultRealm }
        return request.localPart
    }

    /// The stored password of `user` (any spelling of the realm's case), or nil.
    public func password(forUser user: String) -> StoredPassword? {
        password(forKey: key(forUser: user))
    }

    /// The stored password under an already normalized key.
    public func password(forKey key: String) -> StoredPassword? {
        guard let i = index[key] else { return nil }
        let r = records[Int(i)]
        return StoredPassword(
            scheme: r.scheme, value: UnsafeBufferPointer(rebasing: storage.bytes[Int(r.valueStart)..<Int(r.fieldEnd)])
        )
    }

    /// True if the table has this user.
    public func contains(user: String) -> Bool { index[key(forUser: user)] != nil }

    /// User names as written in the file, in file order.
    public var userNames: [String] {
        records.map { String(decoding: storage.bytes[Int($0.lineStart)..<Int($0.userEnd)], as: UTF8.self) }
    }

    /// The line a user is defined on (1-based), for messages.
    public func line(ofUser user: String) -> Int? {
        index[key(forUser: user)].map { Int(records[Int($0)].line) }
    }
}

// MARK: - the byte parser

extension PasswdFile {
    struct ParseOutcome {
        var records: [Record] = []
        var index: [String: Int32] = [:]
        var problems: [PasswdFileProblem] = []
        var problemCount = 0
        var warnings: [PasswdFileProblem] = []
        var credentialSchemes: Set<CredentialScheme> = []
    }

    enum Parser {
        static let newline = UInt8(ascii: "\n")
        static let colon = UInt8(ascii: ":")
        static let at = UInt8(ascii: "@")

        static func parse(_ bytes: UnsafeBufferPointer<UInt8>, path: String, defaultRealm: String?) -> ParseOutcome {
            var out = ParseOutcome()
            guard let base = bytes.baseAddress, bytes.count > 0 else { return out }
            let estimate = countLines(bytes)
            out.records.reserveCapacity(estimate)
            out.index.reserveCapacity(estimate)
            var schemesSeen = Set<PasswordScheme>()
            let defaultRealmSuffix = defaultRealm.map { "@" + $0 }

            func problem(_ line: Int, _ message: String) {
                out.problemCount += 1
                if out.problems.count < PasswdFile.maxReportedProblems {
                    out.problems.append(PasswdFileProblem(path: path, line: line, message: message))
                }
            }

            var lineNumber = 0
            var start = 0
            let end = bytes.count
            while start < end {
                lineNumber += 1
                let nl = memchr(base + start, Int32(newline), end - start)
                let next: Int
                var lineEnd: Int
                if let nl {
                    lineEnd = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                    next = lineEnd + 1
                } else {
                    lineEnd = end  // last line without a newline: parsed all the same
                    next = end
                }
                defer { start = next }
                if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }

                // Blank lines and comments.
                var first = start
                while first < lineEnd && (bytes[first] == 0x20 || bytes[first] == 0x09) { first += 1 }
                if first == lineEnd { continue }
                if bytes[first] == UInt8(ascii: "#") { continue }
                if first != start {
                    problem(
                        lineNumber, "the line starts with white space; remove it (only '#' comments may be indented)")
                    continue
                }

                // The user name.
                guard let colonPtr = memchr(base + start, Int32(colon), lineEnd - start) else {
                    problem(lineNumber, "no ':' after the user name; expected user[@realm]:{SCHEME}password[:...]")
                    continue
                }
                let userEnd = base.distance(to: colonPtr.assumingMemoryBound(to: UInt8.self))
                if userEnd == start {
                    problem(lineNumber, "empty user name; expected user[@realm]:{SCHEME}password[:...]")
                    continue
                }
                var lastAt = -1
                var badByte = false
                var nonASCII = false
                var upperInRealm = false
                for i in start..<userEnd {
                    let c = bytes[i]
                    if c <= 0x20 || c == 0x7F {
                        badByte = true
                        break
                    }
                    if c >= 0x80 { nonASCII = true }
                    if c == at {
                        lastAt = i
                        upperInRealm = false
                    } else if lastAt >= 0 && c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") {
                        upperInRealm = true
                    }
                }
                if badByte {
                    problem(
                        lineNumber, "the user name contains white space or a control character; user names are one word"
                    )
                    continue
                }
                let userBytes = UnsafeBufferPointer(rebasing: bytes[start..<userEnd])
                // Only built when a message needs it: this loop runs once per user.
                var userDisplay: String { sanitizeForLog(String(decoding: userBytes, as: UTF8.self)) }
                if nonASCII && !isValidUTF8(userBytes) {
                    problem(lineNumber, "the user name is not valid UTF-8; save the file as UTF-8")
                    continue
                }
                if lastAt == start {
                    problem(lineNumber, "user '\(userDisplay)' has an empty local part before '@'")
                    continue
                }
                if lastAt == userEnd - 1 {
                    problem(
                        lineNumber,
                        "user '\(userDisplay)' has an empty realm after '@'; write user@realm or a bare user")
                    continue
                }

                // The password field.
                let fieldStart = userEnd + 1
                var fieldEnd = lineEnd
                if let p = memchr(base + fieldStart, Int32(colon), lineEnd - fieldStart) {
                    fieldEnd = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                }
                let field = UnsafeBufferPointer(rebasing: bytes[fieldStart..<fieldEnd])
                if field.isEmpty {
                    problem(
                        lineNumber,
                        "user '\(userDisplay)' has no password; set one with `saslgate user passwd \(userDisplay)`")
                    continue
                }
                let scheme: PasswordScheme
                let valueRange: Range<Int>
                switch StoredPassword.splitField(field) {
                case .success(let (s, r)):
                    scheme = s
                    valueRange = r
                case .failure(let e):
                    problem(lineNumber, "user '\(userDisplay)': \(e)")
                    continue
                }
                switch StoredPassword.check(scheme: scheme, value: UnsafeBufferPointer(rebasing: field[valueRange])) {
                case .ok: break
                case .warning(let w):
                    out.warnings.append(
                        PasswdFileProblem(path: path, line: lineNumber, message: "user '\(userDisplay)': \(w)"))
                case .error(let e):
                    problem(lineNumber, "user '\(userDisplay)': \(e)")
                    continue
                }

                // The key: realm lower-cased, default realm for a bare name.
                var key: String
                if lastAt < 0 {
                    key = String(decoding: userBytes, as: UTF8.self)
                    if let defaultRealmSuffix { key += defaultRealmSuffix }
                } else if nonASCII {
                    key = PasswdFile.key(forUser: String(decoding: userBytes, as: UTF8.self), defaultRealm: nil)
                } else if upperInRealm {
                    var lowered = Array(userBytes)
                    for i in (lastAt - start + 1)..<lowered.count where lowered[i] >= 0x41 && lowered[i] <= 0x5A {
                        lowered[i] += 32
                    }
                    key = String(decoding: lowered, as: UTF8.self)
                } else {
                    key = String(decoding: userBytes, as: UTF8.self)
                }

                let n = Int32(out.records.count)
                let existing = insertIfAbsent(&out.index[key, default: -1], n)
                if existing >= 0 {
                    let firstLine = out.records[Int(existing)].line
                    problem(
                        lineNumber,
                        "duplicate user '\(userDisplay)' (first defined on line \(firstLine)); remove one of the two lines"
                    )
                    continue
                }
                out.records.append(
                    Record(
                        lineStart: UInt32(start), lineEnd: UInt32(lineEnd), userEnd: UInt32(userEnd),
                        valueStart: UInt32(fieldStart + valueRange.lowerBound), fieldEnd: UInt32(fieldEnd),
                        line: UInt32(lineNumber),
                        scheme: scheme
                    )
                )
                schemesSeen.insert(scheme)
            }
            for s in schemesSeen { out.credentialSchemes.formUnion(s.credentialSchemes) }
            return out
        }

        /// Stores `n` in an absent slot (-1) and returns -1, or returns the index already there.
        @inline(__always)
        private static func insertIfAbsent(_ slot: inout Int32, _ n: Int32) -> Int32 {
            if slot < 0 {
                slot = n
                return -1
            }
            return slot
        }

        static func countLines(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
            guard let base = bytes.baseAddress else { return 0 }
            var n = 1
            var p = 0
            while p < bytes.count, let hit = memchr(base + p, Int32(newline), bytes.count - p) {
                n += 1
                p = base.distance(to: hit.assumingMemoryBound(to: UInt8.self)) + 1
            }
            return n
        }

        static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            var decoder = UTF8()
            var it = bytes.makeIterator()
            while true {
                switch decoder.decode(&it) {
                case .scalarValue: continue
                case .emptyInput: return true
                case .error: return false
                }
            }
        }
    }
}
