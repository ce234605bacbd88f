import AuthConfig
import AuthCore
@testable import AuthEngine
import AuthProtocol
import Logging
import Synchronization
import Testing

final class ManualClock: Sendable {
    let now = Mutex(1000.0)
    var read: @Sendable () -> Double { { [self] in now.withLock { $0 } } }
    func advance(_ s: Double) { now.withLock { $0 += s } }
}

private func policy(_ configure: (inout Settings) -> Void = { _ in }) -> PenaltyTable.Policy {
    var s = Settings()
    s.failureDelay = 2
    s.penaltyMaxDelay = 5
    s.penaltyBlockAfter = 5
    s.penaltyCooldown = 60
    s.penaltyWindow = 300
    configure(&s)
    return PenaltyTable.Policy(settings: s)
}

@Suite struct PenaltyTableTests {
    /// A flood of failures from ever new addresses keeps the table bounded; what goes are the entries
    /// that failed least recently, and the most recent offenders are still counted.
    @Test func boundedUnderAFloodOfAddresses() {
        let clock = ManualClock()
        let t = PenaltyTable(policy: policy { $0.penaltyMaxEntries = 1000 }, clock: clock.read)
        for i in 0..<5000 {
            clock.advance(0.001)
            _ = t.recordFailure(ip: "10.0.\(i / 256).\(i % 256)", user: nil, password: nil)
            #expect(t.count <= 1000)
        }
        #expect(t.count >= 900)
        let rows = t.list().filter { $0.kind == "ip" }
        #expect(rows.contains { $0.key == "10.0.19.135" }, "the newest address (i = 4999) is kept")
        #expect(!rows.contains { $0.key == "10.0.0.0" }, "the oldest address is gone")
    }

    @Test func selectionFindsTheRank() {
        var rng = SystemRandomNumberGenerator()
        for n in [1, 2, 3, 10, 257, 5000] {
            let values = (0..<n).map { _ in Double(Int.random(in: 0..<(n / 2 + 1), using: &rng)) }
            let sorted = values.sorted()
            for rank in Set([0, n / 10, n / 2, n - 1]) {
                var work = values
                #expect(PenaltyTable.select(&work, rank: rank) == sorted[rank], "n \(n) rank \(rank)")
            }
        }
    }

    @Test func delaysEscalateToTheCap() {
        let t = PenaltyTable(policy: policy())
        let delays = (1...4).map { t.recordFailure(ip: "192.0.2.1", user: "u@x", password: Secret("p\($0)")) }
        #expect(delays == [2, 4, 5, 5])
    }

    @Test func sameWrongPasswordDoesNotEscalate() {
        let t = PenaltyTable(policy: policy())
        let delays = (1...8).map { _ in t.recordFailure(ip: "192.0.2.1", user: "u@x", password: Secret("old-password")) }
        #expect(delays.allSatisfy { $0 == 2 })
        #expect(!t.isBlocked(ip: "192.0.2.1", user: "u@x"))
    }

    @Test func blockAfterThresholdThenCoolDownExpires() {
        let clock = ManualClock()
        let t = PenaltyTable(policy: policy(), clock: clock.read)
        for i in 1...5 { _ = t.recordFailure(ip: "192.0.2.1", user: "u\(i)@x", password: Secret("p")) }
        #expect(t.isBlocked(ip: "192.0.2.1", user: nil))
        #expect(!t.isBlocked(ip: "192.0.2.2", user: nil))
        clock.advance(61)
        #expect(!t.isBlocked(ip: "192.0.2.1", user: nil))
    }

    @Test func perUserCountsNeverBlockOtherIPs() {
        let t = PenaltyTable(policy: policy())
        for i in 1...20 { _ = t.recordFailure(ip: "198.51.100.\(i)", user: "victim@x", password: Secret("guess\(i)")) }
        #expect(!t.isBlocked(ip: "203.0.113.9", user: "victim@x"))
        // ...but failures of that user are answered slowly everywhere.
        #expect(t.recordFailure(ip: "203.0.113.9", user: "victim@x", password: Secret("typo")) == 5)
    }

    @Test func successClearsCounts() {
        let t = PenaltyTable(policy: policy())
        for i in 1...4 { _ = t.recordFailure(ip: "192.0.2.1", user: "u@x", password: Secret("p\(i)")) }
        t.recordSuccess(ip: "192.0.2.1", user: "u@x")
        #expect(t.recordFailure(ip: "192.0.2.1", user: "u@x", password: Secret("again")) == 2)
    }

    @Test func trustedNetworksAreExempt() {
        let t = PenaltyTable(policy: policy { $0.trustedNetworks = ["10.0.0.0/8", "2001:db8::/32"] })
        for i in 1...10 {
            #expect(t.recordFailure(ip: "10.1.2.3", user: "u@x", password: Secret("p\(i)")) == 2)
            _ = t.recordFailure(ip: "2001:db8::1", user: "v@x", password: Secret("p\(i)"))
        }
        #expect(!t.isBlocked(ip: "10.1.2.3", user: "u@x"))
        #expect(!t.isBlocked(ip: "2001:db8::1", user: nil))
    }

    @Test func ipv6CountsPer64() {
        #expect(PenaltyTable.ipKey("2001:db8:1:2:aaaa::1") == PenaltyTable.ipKey("2001:db8:1:2:bbbb::9"))
        #expect(PenaltyTable.ipKey("2001:db8:1:2::1") != PenaltyTable.ipKey("2001:db8:1:3::1"))
        #expect(PenaltyTable.ipKey("::ffff:192.0.2.1") == "192.0.2.1")
        #expect(PenaltyTable.ipKey("unknown") == nil)
        #expect(PenaltyTable.ipKey("") == nil)
        let t = PenaltyTable(policy: policy())
        for i in 1...5 { _ = t.recordFailure(ip: "2001:db8:1:2::\(i)", user: nil, password: nil) }
        #expect(t.isBlocked(ip: "2001:db8:1:2:ffff::1", user: nil))
    }

    @Test func tableIsBounded() {
        let t = PenaltyTable(policy: policy { $0.penaltyMaxEntries = 100 })
        for i in 0..<5000 { _ = t.recordFailure(ip: "10.\(i / 65536).\((i / 256) % 256).\(i % 256)", user: "u\(i)@x", password: nil) }
        #expect(t.count <= 100)
    }

    @Test func listAndClear() {
        let t = PenaltyTable(policy: policy())
        _ = t.recordFailure(ip: "192.0.2.1", user: "a@x", password: nil)
        _ = t.recordFailure(ip: "192.0.2.2", user: "b@x", password: nil)
        #expect(t.list().count == 6)
        #expect(t.clear("192.0.2.1") == 2)  // the IP and its pair
        #expect(t.clear("b@x") == 2)  // the user and its pair
        #expect(t.clear(nil) == 2)
        #expect(t.list().isEmpty)
    }
}

@Suite struct PenaltyEngineTests {
    func session(_ table: PenaltyTable, io: FakeIO) throws -> AuthClientSession {
        var settings = Settings()
        settings.failureDelay = 2
        settings.penaltyBlockAfter = 5
        settings.defaultRealm = "example.org"
        let service = try AuthService(
            settings: settings, chain: .init([MemoryPassdb(users: ["test@example.org": "testpass"])]),
            hostname: "h", logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }), penalty: table)
        let s = makeSession(service, io: io)
        try s.handshake()
        return s
    }

    func auth(_ s: AuthClientSession, _ id: Int, _ pass: String, rip: String, extra: String = "") throws {
        try s.feed("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\trip=\(rip)\(extra)\tresp=" + DovecotBase64.encode(Array("\0test\0\(pass)".utf8)))
    }

    @Test func bruteForceGetsBlockedButTheRealUserElsewhereIsNot() async throws {
        let clock = ManualClock()
        let table = PenaltyTable(policy: policy { $0.penaltyBlockAfter = 5 }, clock: clock.read)
        let io = FakeIO()
        let s = try session(table, io: io)
        var answered: [String] = []
        for id in 1...8 {
            try auth(s, id, "guess\(id)", rip: "203.0.113.66")
            await io.drain()
            await io.advance(by: 6)  // every failure answered within the 5 s cap (+ the 0.5 s tick)
            answered += io.take()
        }
        #expect(answered.count == 8)
        #expect(answered.prefix(5).allSatisfy { $0.hasPrefix("FAIL") && $0.hasSuffix("user=test@example.org") })
        // From the 6th on: cool-down, a definitive FAIL at once — even the right password is refused.
        try auth(s, 9, "testpass", rip: "203.0.113.66")
        #expect(io.take() == ["FAIL\t9\treason=Too many failed authentication attempts; try again later"])
        // The real user from another IP gets in at once.
        try auth(s, 10, "testpass", rip: "192.0.2.10")
        await io.drain()
        #expect(io.take() == ["OK\t10\tuser=test@example.org"])
    }

    @Test func noPenaltyRequestsAreNotCounted() async throws {
        let table = PenaltyTable(policy: policy())
        let io = FakeIO()
        let s = try session(table, io: io)
        for id in 1...10 { try auth(s, id, "wrong\(id)", rip: "203.0.113.7", extra: "\tno-penalty") }
        await io.drain()
        #expect(table.count == 0)
    }
}
