#if canImport(Glibc)
import Glibc
#endif
public import AuthCore
import Crypto
import Synchronization

/// An optional cache of plaintext verification results (like Dovecot's auth_cache), so a busy MTA does
/// not pay a password hash on every SMTP session.
///
/// Keyed by the user and a keyed HMAC of user and password (the password itself is never stored), and
/// valid only for the exact data generation of every passdb in the chain: a reloaded table or a
/// changed password takes effect at once. A chain with a passdb that cannot tell its generation (PAM)
/// is never cached. Successes live `ttl`, failures (wrong password, unknown user) `negativeTTL`; at most
/// `maxEntries` entries, the least recently used going first (in constant time: no stall when full).
public final class AuthCache: Sendable {
    struct Key: Hashable {
        var user: String
        var fingerprint: [UInt8]
    }

    struct Entry {
        var result: PassdbResult
        var passdb: String?
        var generations: [UInt64]
        var expires: Double
    }

    public let maxEntries: Int
    public let ttl: Double
    public let negativeTTL: Double
    private let key = SymmetricKey(size: .bits256)
    private let entries: Mutex<LRUTable<Key, Entry>>
    private let clock: @Sendable () -> Double
    private let stats = Mutex<(hits: Int, misses: Int)>((0, 0))

    /// `clock`: seconds on a clock that never goes back (the default reads CLOCK_MONOTONIC).
    public init(maxEntries: Int, ttl: Double, negativeTTL: Double, clock: @escaping @Sendable () -> Double = MonotonicClock.now) {
        self.maxEntries = max(1, maxEntries)
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.clock = clock
        self.entries = Mutex(LRUTable())
    }

    func makeKey(user: String, password: Secret) -> Key {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array(user.utf8) + [0])
        password.withBytes { mac.update(data: Array($0)) }
        return Key(user: user, fingerprint: Array(mac.finalize()).prefix(16).map { $0 })
    }

    /// The cached answer for these data generations, or nil. `countMiss: false` for a look that may be
    /// repeated on the slow path (so a miss is counted once per request).
    public func lookup(user: String, password: Secret, generations: [UInt64], countMiss: Bool = true) -> (PassdbResult, String?)? {
        let k = makeKey(user: user, password: password)
        let now = clock()
        let hit = entries.withLock { e -> (PassdbResult, String?)? in
            guard let entry = e.touch(k) else { return nil }
            guard entry.generations == generations else {
                e.remove(k)
                return nil
            }
            // An expired entry stays (the LRU bound still holds): it answers if the passdbs cannot.
            guard entry.expires > now else { return nil }
            return (entry.result, entry.passdb)
        }
        if hit != nil || countMiss {
            stats.withLock { s in if hit == nil { s.misses += 1 } else { s.hits += 1 } }
        }
        return hit
    }

    /// Dovecot's rule for outages: an entry whose time is up, but of these very data generations, still
    /// answers when asking the passdbs again ended in an internal failure. nil: none kept.
    public func lookupExpired(user: String, password: Secret, generations: [UInt64]) -> (PassdbResult, String?)? {
        let k = makeKey(user: user, password: password)
        return entries.withLock { e -> (PassdbResult, String?)? in
            guard let entry = e.touch(k), entry.generations == generations else { return nil }
            return (entry.result, entry.passdb)
        }
    }

    /// Counts a miss whose look was made with `countMiss: false`.
    public func countMiss() {
        stats.withLock { $0.misses += 1 }
    }

    /// Remembers a verdict. Only definite answers are kept: a temporary failure (an outage) neither
    /// enters the cache nor removes what is there, so entries keep serving while a database is down.
    /// When full, the least recently used entry makes room, in constant time.
    public func store(user: String, password: Secret, generations: [UInt64], result: PassdbResult, passdb: String?) {
        let lifetime: Double
        switch result {
        case .ok, .okAs: lifetime = ttl
        case .passwordMismatch, .userUnknown: lifetime = negativeTTL
        default: return  // disabled, expired, internal failures: always asked again
        }
        guard lifetime > 0 else { return }
        let k = makeKey(user: user, password: password)
        let now = clock()
        let entry = Entry(result: result, passdb: passdb, generations: generations, expires: now + lifetime)
        entries.withLock { e in
            e.insert(k, entry)
            while e.count > maxEntries { e.removeLeastRecent() }
        }
    }

    public var count: Int { entries.withLock { $0.count } }
    public var hitsAndMisses: (hits: Int, misses: Int) { stats.withLock { $0 } }
}

/// A dictionary that remembers the order of use: `touch` and `insert` make an entry the most recent,
/// `removeLeastRecent` drops the oldest. Every operation is O(1): the entries sit in one array of slots
/// linked into a list by index (freed slots are reused), the dictionary maps a key to its slot.
struct LRUTable<Key: Hashable, Value> {
    private struct Slot {
        var key: Key
        var value: Value
        var newer: Int  // -1: none
        var older: Int
    }

    private var slots: [Slot] = []
    private var free: [Int] = []
    private var index: [Key: Int] = [:]
    private var newest = -1
    private var oldest = -1

    var count: Int { index.count }

    /// The value, now the most recently used; nil when absent.
    mutating func touch(_ key: Key) -> Value? {
        guard let i = index[key] else { return nil }
        unlink(i)
        linkAsNewest(i)
        return slots[i].value
    }

    mutating func insert(_ key: Key, _ value: Value) {
        if let i = index[key] {
            slots[i].value = value
            unlink(i)
            linkAsNewest(i)
            return
        }
        let slot = Slot(key: key, value: value, newer: -1, older: -1)
        let i: Int
        if let reused = free.popLast() {
            slots[reused] = slot
            i = reused
        } else {
            slots.append(slot)
            i = slots.count - 1
        }
        index[key] = i
        linkAsNewest(i)
    }

    mutating func remove(_ key: Key) {
        guard let i = index.removeValue(forKey: key) else { return }
        unlink(i)
        free.append(i)
    }

    mutating func removeLeastRecent() {
        guard oldest >= 0 else { return }
        remove(slots[oldest].key)
    }

    private mutating func unlink(_ i: Int) {
        let (newer, older) = (slots[i].newer, slots[i].older)
        if newer >= 0 { slots[newer].older = older } else { newest = older }
        if older >= 0 { slots[older].newer = newer } else { oldest = newer }
        slots[i].newer = -1
        slots[i].older = -1
    }

    private mutating func linkAsNewest(_ i: Int) {
        slots[i].older = newest
        slots[i].newer = -1
        if newest >= 0 { slots[newest].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }
}
