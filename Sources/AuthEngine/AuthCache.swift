#if canImport(Glibc)
import Glibc
#endif
public import AuthCore
import Crypto
public import Passdb
import Synchronization

/// An optional cache of plaintext verification results (like Dovecot's auth_cache), so a busy MTA does
/// not pay a password hash on every SMTP session.
///
/// Keyed by the user and a keyed HMAC of user and password (the password itself is never stored), and
/// valid only for the exact data generation of every passdb in the chain: a reloaded table or a
/// changed password takes effect at once. A chain with a passdb that cannot tell its generation (PAM)
/// is never cached. Successes live `ttl`, failures (wrong password, unknown user) `negativeTTL`; at most
/// `maxEntries` entries, the least recently used going first.
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
        var lastUse: Double
    }

    public let maxEntries: Int
    public let ttl: Double
    public let negativeTTL: Double
    private let key = SymmetricKey(size: .bits256)
    private let entries = Mutex<[Key: Entry]>([:])
    private let clock: @Sendable () -> Double
    private let stats = Mutex<(hits: Int, misses: Int)>((0, 0))

    public init(maxEntries: Int, ttl: Double, negativeTTL: Double, clock: @escaping @Sendable () -> Double = PenaltyTable.monotonicNow) {
        self.maxEntries = maxEntries
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.clock = clock
    }

    func makeKey(user: String, password: Secret) -> Key {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array(user.utf8) + [0])
        password.withBytes { mac.update(data: Array($0)) }
        return Key(user: user, fingerprint: Array(mac.finalize()).prefix(16).map { $0 })
    }

    public func lookup(user: String, password: Secret, generations: [UInt64]) -> (PassdbResult, String?)? {
        let k = makeKey(user: user, password: password)
        let now = clock()
        let hit = entries.withLock { e -> (PassdbResult, String?)? in
            guard var entry = e[k] else { return nil }
            guard entry.expires > now, entry.generations == generations else {
                e[k] = nil
                return nil
            }
            entry.lastUse = now
            e[k] = entry
            return (entry.result, entry.passdb)
        }
        stats.withLock { s in if hit == nil { s.misses += 1 } else { s.hits += 1 } }
        return hit
    }

    public func store(user: String, password: Secret, generations: [UInt64], result: PassdbResult, passdb: String?) {
        let lifetime: Double
        switch result {
        case .ok: lifetime = ttl
        case .passwordMismatch, .userUnknown: lifetime = negativeTTL
        default: return  // disabled, expired, internal failures: always asked again
        }
        guard lifetime > 0 else { return }
        let k = makeKey(user: user, password: password)
        let now = clock()
        entries.withLock { e in
            if e[k] == nil && e.count >= maxEntries {
                // Drop the expired ones, then the least recently used tenth.
                e = e.filter { $0.value.expires > now }
                if e.count >= maxEntries {
                    for (old, _) in e.sorted(by: { $0.value.lastUse < $1.value.lastUse }).prefix(max(1, maxEntries / 10)) {
                        e[old] = nil
                    }
                }
            }
            e[k] = Entry(result: result, passdb: passdb, generations: generations, expires: now + lifetime, lastUse: now)
        }
    }

    public var count: Int { entries.withLock { $0.count } }
    public var hitsAndMisses: (hits: Int, misses: Int) { stats.withLock { $0 } }
}
