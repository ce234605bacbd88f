import Synchronization

/// Refused TCP connections are logged with their address, but a flood of them from outside
/// `inet_clients` cannot flood the log: at most `perSecond` lines in one second of the monotonic clock;
/// the others are only counted, and the next line that gets out says how many were left out.
final class RefusalLogLimiter: Sendable {
    static let perSecond = 20

    private struct State {
        var second: Int64 = -1
        var logged = 0
        var suppressed = 0
    }

    private let state = Mutex(State())

    /// nil: do not log this refusal. Otherwise log it, mentioning the number given (refusals left out
    /// since the last line).
    func admit(now seconds: Double) -> Int? {
        state.withLock { s in
            let second = Int64(seconds)
            if second != s.second {
                s.second = second
                s.logged = 0
            }
            guard s.logged < Self.perSecond else {
                s.suppressed += 1
                return nil
            }
            s.logged += 1
            let left = s.suppressed
            s.suppressed = 0
            return left
        }
    }
}
