import Testing

@testable import AuthServer

/// A flood of connections from outside inet_clients: at most `perSecond` log lines a second, and the
/// next line that gets out counts the ones left out.
@Suite struct RefusalLogLimiterTests {
    @Test func aFloodIsCountedNotLogged() {
        let limiter = RefusalLogLimiter()
        let logged = (0..<100).compactMap { _ in limiter.admit(now: 1000.2) }
        #expect(logged == Array(repeating: 0, count: RefusalLogLimiter.perSecond))
        // The next second: the first line says how many were left out, the next one starts again at 0.
        #expect(limiter.admit(now: 1001.0) == 100 - RefusalLogLimiter.perSecond)
        #expect(limiter.admit(now: 1001.5) == 0)
    }
}
