import AuthCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes of a file that holds secrets: one private allocation, zeroed before it is freed.
/// Immutable after `init`, hence `@unchecked Sendable`.
final class WipingBuffer: @unchecked Sendable {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    /// How many bytes `deinit` zeroes: the whole allocation, or (for an adopted arena) the prefix that
    /// was ever written, so pages of an unused tail are not faulted in just to be zeroed.
    private let wipeLength: Int
    let count: Int

    /// Takes ownership of `base` (allocated with `UnsafeMutablePointer.allocate`).
    private init(base: UnsafeMutablePointer<UInt8>, capacity: Int, count: Int) {
        self.base = base
        self.capacity = capacity
        self.wipeLength = capacity
        self.count = count
    }

    /// Takes ownership of an arena's allocation (see `ByteArena.freeze`): bytes past `count` were never
    /// written, so only `count` bytes are zeroed at the end.
    init(adopting base: UnsafeMutablePointer<UInt8>, count: Int) {
        self.base = base
        self.capacity = count
        self.wipeLength = count
        self.count = count
    }

    convenience init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        let capacity = Swift.max(bytes.count, 1)
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        _ = UnsafeMutableBufferPointer(start: base, count: capacity).initialize(from: bytes)
        self.init(base: base, capacity: capacity, count: bytes.count)
    }

    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    deinit {
        explicitZero(base, wipeLength)
        base.deallocate()
    }

    /// Reads a whole open file. Grows if the file grows while being read.
    static func read(fd: Int32, sizeHint: Int) throws(FileReadError) -> WipingBuffer {
        var capacity = Swift.max(sizeHint + 1, 4096)
        var base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        var count = 0
        while true {
            if count == capacity {
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                bigger.update(from: base, count: count)
                explicitZero(base, capacity)
                base.deallocate()
                base = bigger
                capacity *= 2
            }
            let n = Glibc.read(fd, base + count, capacity - count)
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                explicitZero(base, capacity)
                base.deallocate()
                throw FileReadError(operation: "read", errno: e)
            }
            if n == 0 { break }
            count += n
        }
        return WipingBuffer(base: base, capacity: capacity, count: count)
    }
}

/// A failed system call on a file, with `strerror` text.
struct FileReadError: Error, CustomStringConvertible {
    var operation: String
    var errno: Int32
    var description: String { "\(operation) failed: \(String(cString: strerror(errno)))" }
}

/// What identifies one version of a file: a rewrite through rename changes the inode, an in-place
/// write changes the size or the modification time.
public struct FileIdentity: Sendable, Equatable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modificationSeconds: Int
    public var modificationNanoseconds: Int
    public var changeSeconds: Int
    public var changeNanoseconds: Int
    /// This version was read while it changed or right after: an equal identity seen later does not
    /// prove the contents equal (see `PasswdFile.readFile`). Not part of equality.
    public var unsettled = false

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        modificationSeconds = Int(st.st_mtim.tv_sec)
        modificationNanoseconds = Int(st.st_mtim.tv_nsec)
        changeSeconds = Int(st.st_ctim.tv_sec)
        changeNanoseconds = Int(st.st_ctim.tv_nsec)
    }

    public static func == (a: FileIdentity, b: FileIdentity) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size
            && a.modificationSeconds == b.modificationSeconds && a.modificationNanoseconds == b.modificationNanoseconds
            && a.changeSeconds == b.changeSeconds && a.changeNanoseconds == b.changeNanoseconds
    }

    /// True when the file's last change (ctime) is less than `seconds` before now on the wall clock (or
    /// in the future: a clock step).
    func changedWithin(seconds: Int) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let age = (Int(now.tv_sec) - changeSeconds) * 1_000_000_000 + (Int(now.tv_nsec) - changeNanoseconds)
        return age < seconds * 1_000_000_000
    }

    /// How long until the file's last change (ctime) is `seconds` old on the wall clock: zero when it
    /// is already, at most `seconds` (a ctime in the future: a clock step).
    func timeUntilAged(seconds: Int) -> Duration {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let age = (Int(now.tv_sec) - changeSeconds) * 1_000_000_000 + (Int(now.tv_nsec) - changeNanoseconds)
        let left = Swift.min(Swift.max(seconds * 1_000_000_000 - age, 0), seconds * 1_000_000_000)
        return .nanoseconds(left)
    }

    /// `stat(2)` of a path; nil when it cannot be read (the error is in `errno`).
    static func of(path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(st)
    }

    public var description: String {
        "inode \(inode), \(size) bytes, mtime \(modificationSeconds).\(modificationNanoseconds)"
    }
}

/// `strerror` as a Swift string.
func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

/// A growing byte buffer for secrets: every allocation it gives up is zeroed first. `freeze` hands the
/// bytes to a `WipingBuffer`; an arena dropped without `freeze` zeroes and frees them itself.
final class ByteArena {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0
    private var frozen = false

    /// `capacity` is reserved up front; large allocations are mapped lazily, so an estimate that is too
    /// high costs address space, not memory.
    init(capacity: Int) {
        self.capacity = Swift.max(capacity, 16)
        self.base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit {
        if !frozen {
            explicitZero(base, count)
            base.deallocate()
        }
    }

    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private func grow(_ needed: Int) {
        let newCapacity = Swift.max(needed, capacity * 2)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        bigger.update(from: base, count: count)
        explicitZero(base, count)
        base.deallocate()
        base = bigger
        capacity = newCapacity
    }

    /// Appends one byte; `reserve` first.
    @inline(__always)
    func appendReserved(_ byte: UInt8) {
        base[count] = byte
        count += 1
    }

    /// Appends bytes; `reserve` first.
    @inline(__always)
    func appendReserved(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        (base + count).update(from: src, count: bytes.count)
        count += bytes.count
    }

    /// LEB128: 7 bits a byte, low first; at most 10 bytes. `reserve` first.
    @inline(__always)
    func appendVarintReserved(_ value: Int) {
        var v = UInt(value)
        while v >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: v) | 0x80
            count += 1
            v >>= 7
        }
        base[count] = UInt8(v)
        count += 1
    }

    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    func freeze() -> WipingBuffer {
        precondition(!frozen)
        frozen = true
        return WipingBuffer(adopting: base, count: count)
    }
}

/// XXH64 of a byte stream fed in pieces of any size (the result does not depend on how it is cut):
/// a fingerprint of a file's bytes, computed while they are read anyway, so a later read can tell
/// cheaply whether the contents are still the same. Not a defence against a crafted collision: whoever
/// can write the file can put any table in it without one.
struct ContentHasher {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private let seed: UInt64
    private var v1: UInt64, v2: UInt64, v3: UInt64, v4: UInt64
    private var total = 0
    /// Up to 31 bytes not yet in a 32-byte stripe (four UInt64s: no heap, nothing to wipe but the stack).
    private var tail: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var tailCount = 0

    init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ Self.p1 &+ Self.p2
        v2 = seed &+ Self.p2
        v3 = seed
        v4 = seed &- Self.p1
    }

    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        var acc = acc &+ input &* p2
        acc = (acc << 31) | (acc >> 33)
        return acc &* p1
    }

    @inline(__always) private static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        let acc = acc ^ round(0, val)
        return acc &* p1 &+ p4
    }

    @inline(__always) private static func load(_ p: UnsafeRawPointer) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
    }

    @inline(__always) private mutating func stripe(_ p: UnsafeRawPointer) {
        v1 = Self.round(v1, Self.load(p))
        v2 = Self.round(v2, Self.load(p + 8))
        v3 = Self.round(v3, Self.load(p + 16))
        v4 = Self.round(v4, Self.load(p + 24))
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        total += n
        if tailCount > 0 {
            let take = Swift.min(32 - tailCount, n)
            withUnsafeMutableBytes(of: &tail) { t in
                t.baseAddress!.advanced(by: tailCount).copyMemory(from: p, byteCount: take)
            }
            tailCount += take
            p += take
            n -= take
            if tailCount < 32 { return }
            var full = tail
            withUnsafeBytes(of: &full) { stripe($0.baseAddress!) }
            tailCount = 0
        }
        while n >= 32 {
            stripe(p)
            p += 32
            n -= 32
        }
        if n > 0 {
            withUnsafeMutableBytes(of: &tail) { t in t.baseAddress!.copyMemory(from: p, byteCount: n) }
            tailCount = n
        }
    }

    /// The hash; forgets the buffered tail bytes.
    mutating func finalize() -> UInt64 {
        defer {
            tail = (0, 0, 0, 0)
            tailCount = 0
        }
        var h: UInt64
        if total >= 32 {
            h = ((v1 << 1) | (v1 >> 63)) &+ ((v2 << 7) | (v2 >> 57)) &+ ((v3 << 12) | (v3 >> 52))
                &+ ((v4 << 18) | (v4 >> 46))
            h = Self.merge(h, v1)
            h = Self.merge(h, v2)
            h = Self.merge(h, v3)
            h = Self.merge(h, v4)
        } else {
            h = seed &+ Self.p5
        }
        h &+= UInt64(total)
        var rest = tail
        withUnsafeBytes(of: &rest) { t in
            var p = t.baseAddress!
            var n = tailCount
            while n >= 8 {
                h ^= Self.round(0, Self.load(p))
                h = ((h << 27) | (h >> 37)) &* Self.p1 &+ Self.p4
                p += 8
                n -= 8
            }
            if n >= 4 {
                h ^= UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))) &* Self.p1
                h = ((h << 23) | (h >> 41)) &* Self.p2 &+ Self.p3
                p += 4
                n -= 4
            }
            while n > 0 {
                h ^= UInt64(p.load(as: UInt8.self)) &* Self.p5
                h = ((h << 11) | (h >> 53)) &* Self.p1
                p += 1
                n -= 1
            }
        }
        h ^= h >> 33
        h &*= Self.p2
        h ^= h >> 29
        h &*= Self.p3
        h ^= h >> 32
        return h
    }
}
