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
/// case-sensitively; keys are compared byte for byte. Malformed lines and duplicate users make the whole
/// file invalid; every problem is reported with its line.
///
/// Made for a million users: the file is read in 1 MiB chunks and each entry is copied into one wiping
/// arena as a few header bytes (scheme, line, lengths) followed by the user name as written, the
/// normalized key when it differs (an upper-case realm), and the password value; the other fields of
/// the line are not kept. An open-addressing hash table of 32-bit arena offsets (load factor at most
/// 2/3) finds an entry by hashing its key bytes; a lookup compares the key byte by byte with the arena.
/// No per-user allocation: about 6 bytes of header and 12 to 24 bytes of index per user on top of the
/// name and password value.
public final class PasswdFile: Sendable {
    /// At most this many problems are kept in an error (all are counted).
    public static let maxReportedProblems = 200
    /// Offsets are 32-bit: larger files are refused.
    public static let maxFileSize = Int(UInt32.max) - 1
    /// The size of the `read(2)` chunks of a load (a longer line makes its chunk grow).
    static let chunkSize = 1 << 20

    public let path: String
    /// Lower-cased default realm, nil when bare names stay bare.
    public let defaultRealm: String?
    /// Lines worth a log message that did not stop the load (weak or unknown crypt methods).
    public let warnings: [PasswdFileProblem]
    /// Credential kinds the entries can give, for `PassdbCapabilities`.
    public let credentialSchemes: Set<CredentialScheme>
    /// The file's stat at the time it was read (nil for tables parsed from memory).
    public let identity: FileIdentity?
    /// XXH64 (seeded per process) of the bytes that were parsed, for `fingerprint(path:)`; nil for
    /// tables parsed from memory.
    let contentHash: UInt64?
    /// Number of users.
    public let count: Int

    /// `"@" + defaultRealm` (empty without one) at offset 0, then the entries (see `Entry`).
    let storage: WipingBuffer
    let index: KeyIndex

    private init(
        path: String, defaultRealm: String?, storage: WipingBuffer, index: KeyIndex, count: Int,
        warnings: [PasswdFileProblem], credentialSchemes: Set<CredentialScheme>, identity: FileIdentity?,
        contentHash: UInt64?
    ) {
        self.contentHash = contentHash
        self.path = path
        self.defaultRealm = defaultRealm
        self.storage = storage
        self.index = index
        self.count = count
        self.warnings = warnings
        self.credentialSchemes = credentialSchemes
        self.identity = identity
    }

    // MARK: loading

    /// Opens `path` for reading and checks it is a regular file of at most `maxFileSize` bytes; the caller
    /// closes the descriptor.
    private static func openTable(_ path: String) throws(PasswdFileError) -> (Int32, stat) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: path, reason: errnoText(errno)) }
        var st = stat()
        let problem: String?
        if fstat(fd, &st) != 0 {
            problem = errnoText(errno)
        } else if (st.st_mode & S_IFMT) != S_IFREG {
            problem = "not a regular file"
        } else if Int(st.st_size) > maxFileSize {
            problem = "larger than 4 GiB"
        } else {
            problem = nil
        }
        if let problem {
            close(fd)
            throw .unreadable(path: path, reason: problem)
        }
        return (fd, st)
    }

    /// Reads and parses `path`. Throws `.unreadable` or `.invalid` (with every problem's line).
    public static func load(path: String, defaultRealm: String? = nil) throws(PasswdFileError) -> PasswdFile {
        let (fd, st) = try openTable(path)
        defer { close(fd) }
        let realm = normalizedDefaultRealm(defaultRealm)
        var builder = Builder(path: path, defaultRealm: realm, sizeHint: Int(st.st_size))

        // Chunks: complete lines are parsed, a partial last line moves to the front for the next read.
        var capacity = Swift.min(chunkSize, Int(st.st_size) + 1)
        var chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        var filled = 0
        var total = 0
        var hasher = ContentHasher(seed: contentHashSeed)
        defer {
            explicitZero(chunk, capacity)
            chunk.deallocate()
        }
        while true {
            if filled == capacity {
                // One line longer than the chunk: make room for all of it.
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                bigger.update(from: chunk, count: filled)
                explicitZero(chunk, capacity)
                chunk.deallocate()
                chunk = bigger
                capacity *= 2
            }
            let n = Glibc.read(fd, chunk + filled, capacity - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: FileReadError(operation: "read", errno: errno).description)
            }
            if n == 0 { break }
            total += n
            guard total <= maxFileSize else { throw .unreadable(path: path, reason: "larger than 4 GiB") }
            hasher.update(UnsafeRawBufferPointer(start: chunk + filled, count: n))
            filled += n
            let used = builder.feed(UnsafeBufferPointer(start: chunk, count: filled), final: false)
            if used > 0 {
                (chunk).update(from: chunk + used, count: filled - used)
                filled -= used
            }
        }
        _ = builder.feed(UnsafeBufferPointer(start: chunk, count: filled), final: true)

        let identity = settledIdentity(fd: fd, before: st)
        return try builder.finish(identity: identity, contentHash: hasher.finalize())
    }

    /// Per process: `contentHash` values are compared within one daemon only.
    static let contentHashSeed = UInt64.random(in: 0...UInt64.max)

    /// The identity of the version just read from `fd` (`before`: its `fstat` before the read).
    ///
    /// The file changed while it was read (an in-place edit): what was read may be half old, half new.
    /// Keep the identity seen before the read and mark it, so the next check reads the file again.
    /// Timestamps have the kernel's coarse granularity: a second write within the same tick as the one
    /// we read after would leave size, mtime and ctime as they are. A file read within a second of its
    /// last change is therefore marked too (read again once it has been quiet: `PasswdFilePassdb`
    /// confirms such a version in the background, see `fingerprint`).
    static func settledIdentity(fd: Int32, before st: stat) -> FileIdentity {
        var identity = FileIdentity(st)
        var after = stat()
        if fstat(fd, &after) != 0 || FileIdentity(after) != identity { identity.unsettled = true }
        if identity.changedWithin(seconds: 1) { identity.unsettled = true }
        return identity
    }

    /// Reads `path` without parsing it: its identity (settled or not, as for `load`) and the hash of
    /// its bytes, comparable with `contentHash`. For confirming that an unsettled version is the one in
    /// service: a tenth of the cost of a load (one pass over the bytes, no table built).
    static func fingerprint(path: String) throws(PasswdFileError) -> (identity: FileIdentity, hash: UInt64) {
        let (fd, st) = try openTable(path)
        defer { close(fd) }
        let capacity = chunkSize
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer {
            explicitZero(chunk, capacity)
            chunk.deallocate()
        }
        var hasher = ContentHasher(seed: contentHashSeed)
        while true {
            let n = Glibc.read(fd, chunk, capacity)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: FileReadError(operation: "read", errno: errno).description)
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(start: chunk, count: n))
        }
        return (settledIdentity(fd: fd, before: st), hasher.finalize())
    }

    /// Parses bytes that are not (or not yet) a file; `path` is used in messages.
    public static func parse<C: Collection>(
        contents: C, path: String, defaultRealm: String? = nil
    ) throws(PasswdFileError) -> PasswdFile where C.Element == UInt8 {
        let copy = WipingBuffer(copying: contents)
        var builder = Builder(path: path, defaultRealm: normalizedDefaultRealm(defaultRealm), sizeHint: copy.count)
        _ = builder.feed(copy.bytes, final: true)
        return try builder.finish(identity: nil)
    }

    /// Reads a whole file into one buffer (for `PasswdFileEditor`, which rewrites it).
    static func readFile(path: String) throws(PasswdFileError) -> (WipingBuffer, FileIdentity) {
        let (fd, st) = try openTable(path)
        defer { close(fd) }
        let buffer: WipingBuffer
        do {
            buffer = try WipingBuffer.read(fd: fd, sizeHint: Int(st.st_size))
        } catch {
            throw .unreadable(path: path, reason: error.description)
        }
        guard buffer.count <= maxFileSize else { throw .unreadable(path: path, reason: "larger than 4 GiB") }
        return (buffer, settledIdentity(fd: fd, before: st))
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
        guard let e = entry(forKey: key) else { return nil }
        return StoredPassword(scheme: e.scheme, value: UnsafeBufferPointer(rebasing: storage.bytes[e.value]))
    }

    /// True if the table has this user.
    public func contains(user: String) -> Bool { entry(forKey: key(forUser: user)) != nil }

    /// User names as written in the file, in file order.
    public var userNames: [String] {
        let bytes = storage.bytes
        var names: [String] = []
        names.reserveCapacity(count)
        var offset = index.firstEntry
        while offset < bytes.count {
            let e = Entry(bytes, at: offset)
            names.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[e.name]), as: UTF8.self))
            offset = e.end
        }
        return names
    }

    /// The line a user is defined on (1-based), for messages.
    public func line(ofUser user: String) -> Int? {
        entry(forKey: key(forUser: user)).map(\.line)
    }

    func entry(forKey key: String) -> Entry? {
        var key = key
        return key.withUTF8 { index.find($0, in: storage.bytes) }
    }
}

// MARK: - the arena's entries

/// One entry in the arena: a flags byte (scheme number in the low 6 bits, 0x40 = bare name, 0x80 = an
/// explicit key follows the name), the line, the name's length, the explicit key's length (if any) and
/// the value's length as LEB128 numbers, then the name, the key and the value.
struct Entry {
    static let bareFlag: UInt8 = 0x40
    static let explicitKeyFlag: UInt8 = 0x80
    static let schemes = PasswordScheme.allCases.map { $0 }

    var scheme: PasswordScheme
    var bare: Bool
    var line: Int
    /// The user name as written.
    var name: Range<Int>
    /// The normalized key when it differs from the name (a realm with upper-case letters).
    var explicitKey: Range<Int>?
    /// The password value (after `{SCHEME}`).
    var value: Range<Int>
    /// Where the next entry starts.
    var end: Int

    @inline(__always)
    init(_ b: UnsafeBufferPointer<UInt8>, at offset: Int) {
        var p = offset
        let flags = b[p]
        p += 1
        scheme = Entry.schemes[Int(flags & 0x3F)]
        bare = flags & Entry.bareFlag != 0
        line = Entry.varint(b, &p)
        let nameLength = Entry.varint(b, &p)
        let keyLength = flags & Entry.explicitKeyFlag != 0 ? Entry.varint(b, &p) : -1
        let valueLength = Entry.varint(b, &p)
        name = p..<(p + nameLength)
        p += nameLength
        if keyLength >= 0 {
            explicitKey = p..<(p + keyLength)
            p += keyLength
        } else {
            explicitKey = nil
        }
        value = p..<(p + valueLength)
        end = p + valueLength
    }

    @inline(__always)
    static func varint(_ b: UnsafeBufferPointer<UInt8>, _ p: inout Int) -> Int {
        var result = 0
        var shift = 0
        while true {
            let byte = b[p]
            p += 1
            result |= Int(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    static func schemeNumber(_ scheme: PasswordScheme) -> UInt8 {
        UInt8(schemes.firstIndex(of: scheme)!)
    }

    /// The key as two pieces (the second is the `@realm` suffix of a bare name, or empty).
    @inline(__always)
    func key(
        in b: UnsafeBufferPointer<UInt8>, suffix: UnsafeBufferPointer<UInt8>
    ) -> (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) {
        if let k = explicitKey { return (UnsafeBufferPointer(rebasing: b[k]), UnsafeBufferPointer(rebasing: suffix[0..<0])) }
        let n = UnsafeBufferPointer(rebasing: b[name])
        return (n, bare ? suffix : UnsafeBufferPointer(rebasing: suffix[0..<0]))
    }
}

/// The hash index: a power-of-two array of slots, each 0 (empty) or an entry's arena offset + 1 in the
/// low 32 bits and the high 32 bits of its key's hash above: a probe compares those first and reads
/// the entry (a cache miss in a large arena) only when they match. Linear probing. Keys hash with
/// FNV-1a from a per-table random seed and a 64-bit finalizer.
final class KeyIndex: @unchecked Sendable {
    let slots: UnsafeMutableBufferPointer<UInt64>
    let mask: Int
    let seed: UInt64
    /// `"@" + defaultRealm` at the arena's start (empty without a default realm).
    let suffix: Range<Int>
    var firstEntry: Int { suffix.upperBound }
    /// Written once by the builder (see `Builder.finish`), never read.
    var touched: UInt64 = 0

    init(capacityFor count: Int, suffix: Range<Int>) {
        var capacity = 8
        while capacity < count + count / 2 + 1 { capacity <<= 1 }
        slots = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: capacity)
        slots.initialize(repeating: 0)
        mask = capacity - 1
        seed = UInt64.random(in: 0...UInt64.max)
        self.suffix = suffix
    }

    deinit { slots.deallocate() }

    @inline(__always)
    func hash(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        var h = seed ^ 0xcbf2_9ce4_8422_2325
        for x in a { h = (h ^ UInt64(x)) &* 0x100_0000_01b3 }
        for x in b { h = (h ^ UInt64(x)) &* 0x100_0000_01b3 }
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h &*= 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return Int(truncatingIfNeeded: h)
    }

    /// The slot's tag for a hash: its high 32 bits, in the slot's high half.
    @inline(__always)
    static func tag(_ hash: Int) -> UInt64 { UInt64(truncatingIfNeeded: hash) & 0xFFFF_FFFF_0000_0000 }

    /// The entry with this key, or nil.
    func find(_ key: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>) -> Entry? {
        let suffixBytes = UnsafeBufferPointer(rebasing: bytes[suffix])
        let empty = UnsafeBufferPointer(rebasing: suffixBytes[0..<0])
        let h = hash(key, empty)
        let tag = KeyIndex.tag(h)
        var i = h & mask
        while true {
            let slot = slots[i]
            if slot == 0 { return nil }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let e = Entry(bytes, at: Int(slot & 0xFFFF_FFFF) - 1)
                let (k0, k1) = e.key(in: bytes, suffix: suffixBytes)
                if KeyIndex.equal(k0, k1, key, empty) { return e }
            }
            i = (i + 1) & mask
        }
    }

    /// Inserts the entry at `offset` unless one with the same key is there: returns that one's offset.
    /// `hash` is `hash` of the entry's key.
    func insert(_ offset: Int, _ e: Entry, hash: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let suffixBytes = UnsafeBufferPointer(rebasing: bytes[suffix])
        let (a0, a1) = e.key(in: bytes, suffix: suffixBytes)
        let tag = KeyIndex.tag(hash)
        var i = hash & mask
        while true {
            let slot = slots[i]
            if slot == 0 {
                slots[i] = tag | UInt64(offset + 1)
                return nil
            }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let other = Entry(bytes, at: Int(slot & 0xFFFF_FFFF) - 1)
                let (b0, b1) = other.key(in: bytes, suffix: suffixBytes)
                if KeyIndex.equal(a0, a1, b0, b1) { return Int(slot & 0xFFFF_FFFF) - 1 }
            }
            i = (i + 1) & mask
        }
    }

    /// True when `a0 + a1` and `b0 + b1` are the same bytes.
    @inline(__always)
    static func equal(
        _ a0: UnsafeBufferPointer<UInt8>, _ a1: UnsafeBufferPointer<UInt8>,
        _ b0: UnsafeBufferPointer<UInt8>, _ b1: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        guard a0.count + a1.count == b0.count + b1.count else { return false }
        if a0.count == b0.count { return same(a0, b0) && same(a1, b1) }
        // Split at different places (a bare name plus the default realm against a full key).
        let (short, shortTail, long, longTail) = a0.count < b0.count ? (a0, a1, b0, b1) : (b0, b1, a0, a1)
        let k = long.count - short.count
        return same(short, UnsafeBufferPointer(rebasing: long[0..<short.count]))
            && same(UnsafeBufferPointer(rebasing: shortTail[0..<k]), UnsafeBufferPointer(rebasing: long[short.count...]))
            && same(UnsafeBufferPointer(rebasing: shortTail[k...]), longTail)
    }

    @inline(__always)
    static func same(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        return memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
    }
}

// MARK: - building a table

extension PasswdFile {
    /// Collects entries line by line into the arena (`feed`), then builds the index and reports
    /// duplicates (`finish`).
    struct Builder {
        let path: String
        let defaultRealm: String?
        let arena: ByteArena
        let suffix: Range<Int>
        var count = 0
        var lineNumber = 0
        var problems: [PasswdFileProblem] = []
        var problemCount = 0
        var warnings: [PasswdFileProblem] = []
        var schemeMask: UInt64 = 0
        var tooLarge = false

        init(path: String, defaultRealm: String?, sizeHint: Int) {
            self.path = path
            self.defaultRealm = defaultRealm
            let suffixBytes = defaultRealm.map { Array(("@" + $0).utf8) } ?? []
            // Entries are smaller than their lines (no ':', '{SCHEME}', newline or trailing fields) but
            // for pathological files; the arena grows if needed.
            let arena = ByteArena(capacity: sizeHint + suffixBytes.count + 64)
            arena.reserve(suffixBytes.count)
            suffixBytes.withUnsafeBufferPointer { arena.appendReserved($0) }
            self.arena = arena
            suffix = 0..<suffixBytes.count
        }

        mutating func problem(_ line: Int, _ message: String) {
            problemCount += 1
            if problems.count < PasswdFile.maxReportedProblems {
                problems.append(PasswdFileProblem(path: path, line: line, message: message))
            }
        }

        /// Parses the complete lines of `bytes` (and a last line without a newline when `final`);
        /// returns how many bytes it used.
        mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, final: Bool) -> Int {
            guard let base = bytes.baseAddress else { return 0 }
            var start = 0
            let end = bytes.count
            while start < end {
                var lineEnd: Int
                let next: Int
                if let nl = memchr(base + start, Int32(LineParser.newline), end - start) {
                    lineEnd = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                    next = lineEnd + 1
                } else {
                    guard final else { break }
                    lineEnd = end  // last line without a newline: parsed all the same
                    next = end
                }
                lineNumber += 1
                if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                add(bytes, start, lineEnd)
                start = next
            }
            return start
        }

        private mutating func add(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ lineEnd: Int) {
            let parsed: LineParser.Line
            switch LineParser.parse(bytes, start: start, lineEnd: lineEnd) {
            case .skip: return
            case .problem(let message):
                problem(lineNumber, message)
                return
            case .entry(let line): parsed = line
            }
            if let w = parsed.warning { warnings.append(PasswdFileProblem(path: path, line: lineNumber, message: w)) }
            if tooLarge { return }
            let name = UnsafeBufferPointer(rebasing: bytes[start..<parsed.userEnd])
            let value = UnsafeBufferPointer(rebasing: bytes[parsed.valueStart..<parsed.fieldEnd])
            // The key differs from the name only when the realm has upper-case letters.
            var explicitKey: [UInt8]? = nil
            if parsed.lastAt >= 0 {
                if parsed.nonASCII {
                    let key = Array(
                        PasswdFile.key(forUser: String(decoding: name, as: UTF8.self), defaultRealm: nil).utf8)
                    if !key.elementsEqual(name) { explicitKey = key }
                } else if parsed.upperInRealm {
                    var lowered = Array(name)
                    for i in (parsed.lastAt - start + 1)..<lowered.count where lowered[i] >= 0x41 && lowered[i] <= 0x5A {
                        lowered[i] += 32
                    }
                    explicitKey = lowered
                }
            }
            let keyCount = explicitKey?.count ?? 0
            let size = 41 + name.count + keyCount + value.count
            guard arena.count + size < Int(UInt32.max) - 1 else {
                tooLarge = true
                return
            }
            var flags = Entry.schemeNumber(parsed.scheme)
            schemeMask |= 1 << UInt64(flags)
            if parsed.lastAt < 0 { flags |= Entry.bareFlag }
            if explicitKey != nil { flags |= Entry.explicitKeyFlag }
            arena.reserve(size)
            arena.appendReserved(flags)
            arena.appendVarintReserved(lineNumber)
            arena.appendVarintReserved(name.count)
            if let explicitKey { arena.appendVarintReserved(explicitKey.count) }
            arena.appendVarintReserved(value.count)
            arena.appendReserved(name)
            explicitKey?.withUnsafeBufferPointer { arena.appendReserved($0) }
            arena.appendReserved(value)
            count += 1
        }

        /// Indexes the entries; throws when a line had a problem or a user is defined twice.
        consuming func finish(identity: FileIdentity?, contentHash: UInt64? = nil) throws(PasswdFileError) -> PasswdFile {
            if tooLarge {
                throw .unreadable(path: path, reason: "the entries need more than 4 GiB; split the table")
            }
            let storage = arena.freeze()
            let bytes = storage.bytes
            let index = KeyIndex(capacityFor: count, suffix: suffix)
            var duplicates: [PasswdFileProblem] = []
            var duplicateCount = 0
            // The slots are touched in random order, one cache miss per entry: done one at a time,
            // the inserts wait for memory in turn. So the entries are taken in batches: their hashes
            // first, with a load of each one's home slot (independent loads, in flight together),
            // then the inserts, in file order as before, on slots that are in cache by then.
            func insertOne(_ offset: Int, hash: Int) {
                let e = Entry(bytes, at: offset)
                if let first = index.insert(offset, e, hash: hash, in: bytes) {
                    duplicateCount += 1
                    if duplicates.count < PasswdFile.maxReportedProblems {
                        let firstLine = Entry(bytes, at: first).line
                        let display = sanitizeForLog(String(decoding: UnsafeBufferPointer(rebasing: bytes[e.name]), as: UTF8.self))
                        duplicates.append(
                            PasswdFileProblem(
                                path: path, line: e.line,
                                message:
                                    "duplicate user '\(display)' (first defined on line \(firstLine)); remove one of the two lines"
                            ))
                    }
                }
            }
            let suffixBytes = UnsafeBufferPointer(rebasing: bytes[suffix])
            let batchSize = 16
            var batchOffsets = [Int](repeating: 0, count: batchSize)
            var batchHashes = [Int](repeating: 0, count: batchSize)
            var touched: UInt64 = 0
            var offset = suffix.upperBound
            while offset < bytes.count {
                var n = 0
                while n < batchSize && offset < bytes.count {
                    let e = Entry(bytes, at: offset)
                    let (k0, k1) = e.key(in: bytes, suffix: suffixBytes)
                    let h = index.hash(k0, k1)
                    touched |= index.slots[h & index.mask]
                    batchOffsets[n] = offset
                    batchHashes[n] = h
                    n += 1
                    offset = e.end
                }
                for b in 0..<n {
                    insertOne(batchOffsets[b], hash: batchHashes[b])
                }
            }
            index.touched = touched  // keeps those loads (an unused load would be optimized away)
            let total = problemCount + duplicateCount
            guard total == 0 else {
                // Both lists are in line order: the first `maxReportedProblems` of their merge.
                var merged: [PasswdFileProblem] = []
                var i = 0
                var j = 0
                while merged.count < PasswdFile.maxReportedProblems && (i < problems.count || j < duplicates.count) {
                    if j >= duplicates.count || (i < problems.count && problems[i].line < duplicates[j].line) {
                        merged.append(problems[i])
                        i += 1
                    } else {
                        merged.append(duplicates[j])
                        j += 1
                    }
                }
                throw .invalid(path: path, problems: merged, total: total)
            }
            var schemes = Set<CredentialScheme>()
            for (n, scheme) in Entry.schemes.enumerated() where schemeMask & (1 << UInt64(n)) != 0 {
                schemes.formUnion(scheme.credentialSchemes)
            }
            return PasswdFile(
                path: path, defaultRealm: defaultRealm, storage: storage, index: index, count: count,
                warnings: warnings, credentialSchemes: schemes, identity: identity, contentHash: contentHash)
        }
    }
}

// MARK: - one line

extension PasswdFile {
    /// The checks of one line, shared by the table builder and `Parser` (the editor's view).
    enum LineParser {
        static let newline = UInt8(ascii: "\n")
        static let colon = UInt8(ascii: ":")
        static let at = UInt8(ascii: "@")

        struct Line {
            /// End of the user name; the password field starts one byte later.
            var userEnd: Int
            /// The last `@` of the name, -1 for a bare name.
            var lastAt: Int
            var nonASCII: Bool
            /// An ASCII upper-case letter after the last `@`.
            var upperInRealm: Bool
            var fieldEnd: Int
            /// Start of the value after `{SCHEME}`.
            var valueStart: Int
            var scheme: PasswordScheme
            /// A message for the log that does not stop the load.
            var warning: String?
        }

        enum Outcome {
            case skip
            case problem(String)
            case entry(Line)
        }

        /// `lineEnd` is the end of the line's content (before `\r\n` or `\n`).
        @inline(__always)
        static func parse(_ bytes: UnsafeBufferPointer<UInt8>, start: Int, lineEnd: Int) -> Outcome {
            let base = bytes.baseAddress!
            // Blank lines and comments.
            var first = start
            while first < lineEnd && (base[first] == 0x20 || base[first] == 0x09) { first += 1 }
            if first == lineEnd { return .skip }
            if base[first] == UInt8(ascii: "#") { return .skip }
            if first != start {
                return .problem("the line starts with white space; remove it (only '#' comments may be indented)")
            }

            // The user name.
            guard let colonPtr = memchr(base + start, Int32(colon), lineEnd - start) else {
                return .problem("no ':' after the user name; expected user[@realm]:{SCHEME}password[:...]")
            }
            let userEnd = base.distance(to: colonPtr.assumingMemoryBound(to: UInt8.self))
            if userEnd == start {
                return .problem("empty user name; expected user[@realm]:{SCHEME}password[:...]")
            }
            var lastAt = -1
            var badByte = false
            var nonASCII = false
            var upperInRealm = false
            // `base`: start..<userEnd lies within `bytes` (memchr found the ':' there).
            for i in start..<userEnd {
                let c = base[i]
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
                return .problem("the user name contains white space or a control character; user names are one word")
            }
            let userBytes = UnsafeBufferPointer(rebasing: bytes[start..<userEnd])
            // Only built when a message needs it: this runs once per user.
            var userDisplay: String { sanitizeForLog(String(decoding: userBytes, as: UTF8.self)) }
            if nonASCII && !isValidUTF8(userBytes) {
                return .problem("the user name is not valid UTF-8; save the file as UTF-8")
            }
            if lastAt == start {
                return .problem("user '\(userDisplay)' has an empty local part before '@'")
            }
            if lastAt == userEnd - 1 {
                return .problem("user '\(userDisplay)' has an empty realm after '@'; write user@realm or a bare user")
            }

            // The password field.
            let fieldStart = userEnd + 1
            var fieldEnd = lineEnd
            if let p = memchr(base + fieldStart, Int32(colon), lineEnd - fieldStart) {
                fieldEnd = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
            }
            let field = UnsafeBufferPointer(rebasing: bytes[fieldStart..<fieldEnd])
            if field.isEmpty {
                return .problem("user '\(userDisplay)' has no password; set one with `saslgate user passwd \(userDisplay)`")
            }
            let scheme: PasswordScheme
            let valueRange: Range<Int>
            switch StoredPassword.splitField(field) {
            case .success(let (s, r)):
                scheme = s
                valueRange = r
            case .failure(let e):
                return .problem("user '\(userDisplay)': \(e)")
            }
            var warning: String?
            switch StoredPassword.check(scheme: scheme, value: UnsafeBufferPointer(rebasing: field[valueRange])) {
            case .ok: break
            case .warning(let w): warning = "user '\(userDisplay)': \(w)"
            case .error(let e): return .problem("user '\(userDisplay)': \(e)")
            }
            return .entry(
                Line(
                    userEnd: userEnd, lastAt: lastAt, nonASCII: nonASCII, upperInRealm: upperInRealm,
                    fieldEnd: fieldEnd, valueStart: fieldStart + valueRange.lowerBound, scheme: scheme,
                    warning: warning))
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

// MARK: - the editor's view of a file

extension PasswdFile {
    /// What `PasswdFileEditor` needs: every entry's place in the file and a key lookup.
    struct ParseOutcome {
        var records: [Record] = []
        /// Key bytes (as the table compares them) to the record's number.
        var index: [[UInt8]: Int32] = [:]
        var problems: [PasswdFileProblem] = []
        var problemCount = 0

        /// The record of an already normalized key.
        func record(forKey key: String) -> Record? {
            index[Array(key.utf8)].map { records[Int($0)] }
        }
    }

    /// One entry: byte offsets into the file.
    struct Record: Sendable {
        var lineStart: UInt32
        /// End of the line's content (before `\r\n` or `\n`).
        var lineEnd: UInt32
        /// End of the user name; the password field starts one byte later.
        var userEnd: UInt32
        var fieldEnd: UInt32
        var line: UInt32
    }

    enum Parser {
        /// Parses a whole file held in memory (the same checks and problems as a load).
        static func parse(_ bytes: UnsafeBufferPointer<UInt8>, path: String, defaultRealm: String?) -> ParseOutcome {
            var out = ParseOutcome()
            guard let base = bytes.baseAddress, bytes.count > 0 else { return out }
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
                let nl = memchr(base + start, Int32(LineParser.newline), end - start)
                let next: Int
                var lineEnd: Int
                if let nl {
                    lineEnd = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                    next = lineEnd + 1
                } else {
                    lineEnd = end
                    next = end
                }
                defer { start = next }
                if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                let line: LineParser.Line
                switch LineParser.parse(bytes, start: start, lineEnd: lineEnd) {
                case .skip: continue
                case .problem(let message):
                    problem(lineNumber, message)
                    continue
                case .entry(let parsed): line = parsed
                }
                let user = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<line.userEnd]), as: UTF8.self)
                var key: String
                if line.lastAt < 0 {
                    key = user
                    if let defaultRealmSuffix { key += defaultRealmSuffix }
                } else {
                    key = PasswdFile.key(forUser: user, defaultRealm: nil)
                }
                let n = Int32(out.records.count)
                let keyBytes = Array(key.utf8)
                if let existing = out.index[keyBytes] {
                    let firstLine = out.records[Int(existing)].line
                    problem(
                        lineNumber,
                        "duplicate user '\(sanitizeForLog(user))' (first defined on line \(firstLine)); remove one of the two lines"
                    )
                    continue
                }
                out.index[keyBytes] = n
                out.records.append(
                    Record(
                        lineStart: UInt32(start), lineEnd: UInt32(lineEnd), userEnd: UInt32(line.userEnd),
                        fieldEnd: UInt32(line.fieldEnd), line: UInt32(lineNumber)))
            }
            return out
        }
    }
}
