import Foundation
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

    @Test func aSlowCallIsAnsweredAtTheDeadline() async throws {
        let pool = try Self.pool(threads: 1, queue: 0, timeout: .milliseconds(100))
        let start = ContinuousClock.now
        let r = await pool.run { _ in usleep(2_000_000); return 1 }
        #expect(r == .failure(.timedOut))
        #expect(ContinuousClock.now - start < .milliseconds(1500))
        pool.shutdown()
        #expect(await pool.waitForThreads(limit: .seconds(4)))
    }

    @Test func aFullPoolRefusesAtOnce() async throws {
        let pool = try Self.pool(threads: 1, queue: 0, timeout: .seconds(2))
        async let first = pool.run { _ in usleep(300_000); return 1 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await pool.run { _ in 2 } == .failure(.busy))
        #expect(await first == .success(1))
        pool.shutdown()
        #expect(await pool.waitForThreads(limit: .seconds(2)))
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
