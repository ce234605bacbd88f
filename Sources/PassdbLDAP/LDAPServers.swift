import Synchronization

/// The configured servers in order, with a back-off per server shared by all pool threads: a server
/// that failed to connect is skipped for 250 ms, then 500 ms, 1 s, ... up to `maximumBackoff`, so an
/// outage costs each request a fast failure instead of a full connect timeout; the first connect that
/// works clears it. When every server is backing off, the one whose back-off ends first is still
/// tried once that time has come (never earlier), so recovery is noticed within `maximumBackoff`.
final class LDAPServers: Sendable {
    static let firstBackoff: Duration = .milliseconds(250)
    static let maximumBackoff: Duration = .seconds(4)

    let uris: [String]
    private let health: Mutex<[Health]>

    struct Health: Sendable {
        var failures = 0
        var retryAt: ContinuousClock.Instant?
        /// Why the last attempt failed, for the log while the server backs off (the first failure was
        /// logged by the request that met it; later requests only see the back-off).
        var lastError: String?
    }

    init(uris: [String]) {
        self.uris = uris
        self.health = Mutex(Array(repeating: Health(), count: uris.count))
    }

    /// The servers to try now, in configured order: those not backing off.
    func candidates(now: ContinuousClock.Instant = .now) -> [String] {
        health.withLock { h in
            uris.indices.filter { h[$0].retryAt.map { $0 <= now } ?? true }.map { uris[$0] }
        }
    }

    /// How long until the first server may be tried again (nil: one may be tried now).
    func nextRetry(now: ContinuousClock.Instant = .now) -> Duration? {
        health.withLock { h in
            let waits = h.compactMap { $0.retryAt.map { $0 - now } }
            guard waits.count == h.count, let least = waits.min(), least > .zero else { return nil }
            return least
        }
    }

    /// The reasons of the servers backing off now, `uri: reason` each, for a log line.
    func reasons(now: ContinuousClock.Instant = .now) -> String {
        health.withLock { h in
            uris.indices.compactMap { i in
                guard let at = h[i].retryAt, at > now, let why = h[i].lastError else { return nil }
                return "\(uris[i]): \(why)"
            }.joined(separator: "; ")
        }
    }

    func succeeded(_ uri: String) {
        guard let i = uris.firstIndex(of: uri) else { return }
        health.withLock { $0[i] = Health() }
    }

    /// Records a failed connect; returns the back-off now in force for that server.
    @discardableResult
    func failed(_ uri: String, error: String? = nil, now: ContinuousClock.Instant = .now) -> Duration {
        guard let i = uris.firstIndex(of: uri) else { return .zero }
        return health.withLock { h in
            h[i].failures += 1
            if let error { h[i].lastError = error }
            var wait = Self.firstBackoff
            for _ in 1..<min(h[i].failures, 16) where wait < Self.maximumBackoff { wait *= 2 }
            wait = min(wait, Self.maximumBackoff)
            h[i].retryAt = now + wait
            return wait
        }
    }
}
