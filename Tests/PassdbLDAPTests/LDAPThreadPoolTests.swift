import Foundation
import Synchronization
import Testing

@testable import PassdbLDAP

/// The pool's bounds: threads, queue, deadline, and that shutdown leaves no thread behind.
@Suite struct LDAPThreadPoolTests {
    static func pool(threads: Int, queue: Int, timeout: Duration) throws -> LDAPThreadPool {
        let settings = try LDAPSettings.parse(text: "uris = ldap://127.0.0.1:1\nbase = dc=x\n", file: "/t/ldap.conf")
        let servers = LDAPServers(uris: settings.uris)
        return LDAPThreadPool(maxThreads: threads, maxQueue: queue, timeout: timeout) {
            LDAPWorker(settings: settings, servers: servers)
        }
    }

    @Test func runsAndShutsDownItsThreads() async throws {
        let pool = try Self.pool(threads: 2, queue: 4, timeout: .seconds(2))
        let r = await pool.run { _ in 42 }
        #expect(r == .success(42))
        #expect(pool.threadCount == 1)
        pool.shutdown()
        #expect(await pool.waitForThreads(limit: .seconds(2)))
        #expect(await pool.run { _ in 1 } == .failure(.shutDown))
    }

    /// The answer comes at the deadline, not when the work ends (the work here waits until the test
    /// lets it go, up to 20 s; the bound leaves a loaded machine seconds of slack either way).
    @Test func aSlowCallIsAnsweredAtTheDeadline() async throws {
        let pool = try Self.pool(threads: 1, queue: 0, timeout: .milliseconds(100))
        let gate = DispatchSemaphore(value: 0)
        let start = ContinuousClock.now
        let r = await pool.run { _ in _ = gate.wait(timeout: .now() + 20); return 1 }
        #expect(r == .failure(.timedOut))
        #expect(ContinuousClock.now - start < .seconds(5))
        gate.signal()
        pool.shutdown()
        #expect(await pool.waitForThreads(limit: .seconds(10)))
    }

    /// One thread, no queue: while the thread is busy, a second call is refused at once. The first
    /// call holds the thread until the test lets it go, so nothing depends on timing.
    @Test func aFullPoolRefusesAtOnce() async throws {
        let pool = try Self.pool(threads: 1, queue: 0, timeout: .seconds(30))
        let gate = DispatchSemaphore(value: 0)
        let started = Mutex(false)
        async let first = pool.run { _ in
            started.withLock { $0 = true }
            _ = gate.wait(timeout: .now() + 25)
            return 1
        }
        for _ in 0..<1000 where !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(started.withLock { $0 })
        #expect(await pool.run { _ in 2 } == .failure(.busy))
        gate.signal()
        #expect(await first == .success(1))
        pool.shutdown()
        #expect(await pool.waitForThreads(limit: .seconds(10)))
    }

    @Test func backoffGrowsAndClears() {
        let servers = LDAPServers(uris: ["ldap://a", "ldap://b"])
        let now = ContinuousClock.now
        #expect(servers.failed("ldap://a", now: now) == .milliseconds(250))
        #expect(servers.failed("ldap://a", now: now) == .milliseconds(500))
        #expect(servers.candidates(now: now) == ["ldap://b"])
        #expect(servers.candidates(now: now + .seconds(1)) == ["ldap://a", "ldap://b"])
        for _ in 0..<20 { servers.failed("ldap://b", now: now) }
        #expect(servers.failed("ldap://b", now: now) == LDAPServers.maximumBackoff)
        servers.succeeded("ldap://a")
        #expect(servers.candidates(now: now) == ["ldap://a"])
    }
}
