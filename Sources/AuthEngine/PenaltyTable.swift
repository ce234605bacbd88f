#if canImport(Glibc)
import Glibc
#endif
import Crypto
public import AuthCore
import Synchronization

/// Brute-force control that works with Postfix (issue: Postfix gives up after 10 s and answers 454,
/// which fail2ban ignores). Failures are counted per remote IP (IPv6 per /64), per user and per
/// (user, IP) within `penalty_window`:
/// - each failure is answered after `failure_delay × 2^(n−1)`, capped at `penalty_max_delay`, where n is
///   the largest of the three counts — always well under Postfix's 10 s;
/// - once an IP, or a user from one IP, reaches `penalty_block_after` failures, its requests get a fast,
///   definitive FAIL for `penalty_cooldown` without any passdb being asked. The per-user count never
///   blocks, so an attacker cannot lock the real user out from elsewhere;
/// - the same wrong password tried again (a phone with an old password) does not count again;
/// - a success clears the IP's, the user's and the pair's counts; `trusted_networks` are exempt;
/// - the table holds at most `penalty_max_entries` keys (the least recently failed go first).
/// Shared by all connections; survives reloads (the policy is replaced, the counts are kept).
public final class PenaltyTable: Sendable {
    public struct Policy: Sendable, Equatable {
        public var baseDelay: Double
        public var maxDelay: Double
        public var blockAfter: Int
        public var cooldown: Double
        public var window: Double
        public var maxEntries: Int
        public var trusted: [CIDR]
    }

    struct Entry {
        var failures: Int
        var lastFailure: Double
        /// Keyed HMAC of the last wrong password (pair entries only); never the password.
        var lastPassword: [UInt8]?
        var blockedUntil: Double?
    }

    enum Key: Hashable {
        case ip(String)
        case user(String)
        case pair(String, String)
    }

    struct State {
        var policy: Policy
        var entries: [Key: Entry] = [:]
    }

    /// A snapshot row for `saslgate penalty list`.
    public struct Row: Sendable {
        public var kind: String
        public var key: String
        public var failures: Int
        public var secondsSinceLast: Double
        public var blockedForSeconds: Double?
    }

    private let state: Mutex<State>
    private let fingerprintKey: SymmetricKey
    private let clock: @Sendable () -> Double

    public init(policy: Policy, clock: @escaping @Sendable () -> Double = MonotonicClock.now) {
        state = Mutex(State(policy: policy))
        fingerprintKey = SymmetricKey(size: .bits256)
        self.clock = clock
    }

    public func update(policy: Policy) {
        state.withLock { $0.policy = policy }
    }

    public var policy: Policy { state.withLock { $0.policy } }

    /// Normalized counting key for an address: IPv4 as is, IPv6 as its /64, IPv4-mapped IPv6 as IPv4.
    /// nil when the client gave no usable address (then nothing is counted, as Dovecot does).
    public static func ipKey(_ rip: String?) -> String? {
        guard let rip, !rip.isEmpty, var bytes = IPAddress.bytes(rip) else { return nil }
        if bytes.count == 4 {
            return rip.contains(":") ? "\(bytes[0]).\(bytes[1]).\(bytes[2]).\(bytes[3])" : rip
        }
        for i in 8..<16 { bytes[i] = 0 }
        let hex = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return hex.joined(separator: ":") + "::/64"
    }

    func isTrusted(_ rip: String?, _ policy: Policy) -> Bool {
        guard let rip, !policy.trusted.isEmpty else { return false }
        return policy.trusted.contains { $0.contains(rip) }
    }

    /// Before any work: is this client (or this user from this client) in cool-down?
    public func isBlocked(ip rip: String?, user: String?) -> Bool {
        guard let ip = Self.ipKey(rip) else { return false }
        let now = clock()
        return state.withLock { s in
            if isTrusted(rip, s.policy) { return false }
            if let until = s.entries[.ip(ip)]?.blockedUntil, until > now { return true }
            if let user, let until = s.entries[.pair(user, ip)]?.blockedUntil, until > now { return true }
            return false
        }
    }

    /// Counts a failure and returns how long to wait before answering it.
    public func recordFailure(ip rip: String?, user: String?, password: Secret?) -> Double {
        let now = clock()
        let fingerprint = password.map { p in p.withBytes { Array(HMAC<SHA256>.authenticationCode(for: Array($0), using: fingerprintKey)) } }
        return state.withLock { s in
            let policy = s.policy
            guard let ip = Self.ipKey(rip), !isTrusted(rip, policy) else { return policy.baseDelay }
            var keys: [Key] = [.ip(ip)]
            if let user {
                keys.append(.user(user))
                keys.append(.pair(user, ip))
            }
            // The same wrong password again from the same place: answer as before, count nothing.
            if let user, let fingerprint, let pair = s.entries[.pair(user, ip)], now - pair.lastFailure < policy.window,
                pair.lastPassword.map({ ConstantTime.equals($0, fingerprint) }) == true
            {
                return delay(for: keys.map { s.entries[$0]?.failures ?? 0 }.max() ?? 0, policy)
            }
            var highest = 0
            for key in keys {
                var entry = s.entries[key] ?? Entry(failures: 0, lastFailure: now)
                if now - entry.lastFailure > policy.window { entry = Entry(failures: 0, lastFailure: now) }
                entry.failures += 1
                entry.lastFailure = now
                if case .pair = key { entry.lastPassword = fingerprint }
                switch key {
                case .ip, .pair:
                    if entry.failures >= policy.blockAfter { entry.blockedUntil = now + policy.cooldown }
                case .user:
                    break  // never blocks: the real user must still get in from elsewhere
                }
                highest = max(highest, entry.failures)
                if s.entries[key] == nil && s.entries.count >= policy.maxEntries { evict(&s, now: now) }
                s.entries[key] = entry
            }
            return delay(for: highest, policy)
        }
    }

    /// A success clears the counts of the IP, the user and the pair.
    public func recordSuccess(ip rip: String?, user: String) {
        guard let ip = Self.ipKey(rip) else { return }
        state.withLock { s in
            s.entries[.ip(ip)] = nil
            s.entries[.user(user)] = nil
            s.entries[.pair(user, ip)] = nil
        }
    }

    func delay(for failures: Int, _ policy: Policy) -> Double {
        guard failures > 0, policy.baseDelay > 0 else { return policy.baseDelay }
        let factor = pow(2.0, Double(min(failures - 1, 16)))
        return min(policy.baseDelay * factor, max(policy.maxDelay, policy.baseDelay))
    }

    /// Drops expired entries; if still full, the tenth that failed least recently. Runs under the lock
    /// every maxEntries/10 new keys (an attack from many addresses), so it stays linear and removes in
    /// place: the victims are found by selection, not by sorting the table, and the table is not rebuilt
    /// (100,000 entries: a few milliseconds instead of tens).
    private func evict(_ s: inout State, now: Double) {
        let policy = s.policy
        var expired: [Key] = []
        var times: [Double] = []
        times.reserveCapacity(s.entries.count)
        for (key, e) in s.entries {
            if now - e.lastFailure <= policy.window || (e.blockedUntil ?? 0) > now {
                times.append(e.lastFailure)
            } else {
                expired.append(key)
            }
        }
        for key in expired { s.entries.removeValue(forKey: key) }
        guard s.entries.count >= policy.maxEntries else { return }
        let wanted = max(1, policy.maxEntries / 10)
        let cutoff = Self.select(&times, rank: wanted - 1)
        var victims: [Key] = []
        victims.reserveCapacity(wanted)
        for (key, e) in s.entries where e.lastFailure <= cutoff && victims.count < wanted { victims.append(key) }
        for key in victims { s.entries.removeValue(forKey: key) }
    }

    /// The value of rank `rank` (0-based) in ascending order, by quickselect (average linear time);
    /// reorders `values`.
    static func select(_ values: inout [Double], rank: Int) -> Double {
        var low = 0
        var high = values.count - 1
        let rank = min(max(rank, 0), high)
        var rng = SystemRandomNumberGenerator()
        while low < high {
            let pivot = values[Int.random(in: low...high, using: &rng)]
            var i = low
            var j = high
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j {
                    values.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if rank <= j {
                high = j
            } else if rank >= i {
                low = i
            } else {
                return values[rank]
            }
        }
        return values[rank]
    }

    public var count: Int { state.withLock { $0.entries.count } }

    public func list() -> [Row] {
        let now = clock()
        return state.withLock { s in
            s.entries.compactMap { key, e -> Row? in
                guard now - e.lastFailure <= s.policy.window || (e.blockedUntil ?? 0) > now else { return nil }
                let blocked = e.blockedUntil.flatMap { $0 > now ? $0 - now : nil }
                switch key {
                case .ip(let ip): return Row(kind: "ip", key: ip, failures: e.failures, secondsSinceLast: now - e.lastFailure, blockedForSeconds: blocked)
                case .user(let u): return Row(kind: "user", key: u, failures: e.failures, secondsSinceLast: now - e.lastFailure, blockedForSeconds: blocked)
                case .pair(let u, let ip): return Row(kind: "user+ip", key: "\(u) \(ip)", failures: e.failures, secondsSinceLast: now - e.lastFailure, blockedForSeconds: blocked)
                }
            }.sorted { ($0.kind, $0.key) < ($1.kind, $1.key) }
        }
    }

    /// Clears everything (`target` nil) or every entry mentioning an IP or a user. Returns how many.
    @discardableResult
    public func clear(_ target: String?) -> Int {
        state.withLock { s in
            guard let target else {
                defer { s.entries.removeAll() }
                return s.entries.count
            }
            let ip = Self.ipKey(target)
            let before = s.entries.count
            s.entries = s.entries.filter { key, _ in
                switch key {
                case .ip(let i): return i != ip
                case .user(let u): return u != target
                case .pair(let u, let i): return u != target && i != ip
                }
            }
            return before - s.entries.count
        }
    }
}
