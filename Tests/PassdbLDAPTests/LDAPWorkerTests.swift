import AuthCore
import Foundation
import Synchronization
import Testing

@testable import PassdbLDAP

/// What the worker refuses before it talks to any server.
@Suite struct LDAPWorkerTests {
    /// An empty DN would be an anonymous bind, which some servers accept with any password: it is an
    /// error, and no connection is even tried (the URI here would refuse it, which would be a different
    /// error).
    @Test func anEmptyDNIsNeverBound() throws {
        let settings = try LDAPSettings.parse(text: "uris = ldap://127.0.0.1:1\nbase = dc=x\n", file: "/t/ldap.conf")
        let worker = LDAPWorker(settings: settings, servers: LDAPServers(uris: settings.uris))
        defer { worker.close() }
        switch worker.userBind(dn: "", password: Secret("any-password")) {
        case .success(let bound):
            Issue.record("an empty DN was bound (accepted: \(bound.accepted))")
        case .failure(let error):
            #expect(error.message.contains("DN is empty"))
            #expect(error.uri.isEmpty)
        }
    }

    /// A call the pool answered at its deadline (the client got a temporary failure) makes no user bind
    /// afterwards: on Active Directory a late bind with a wrong password still counts toward lockout.
    @Test func aCallAnsweredAtItsDeadlineMakesNoBind() async throws {
        let pool = try LDAPThreadPoolTests.pool(threads: 1, queue: 0, timeout: .milliseconds(100))
        let seen = Mutex<String?>(nil)
        let r = await pool.run { worker -> Int in
            usleep(400_000)
            if case .failure(let e) = worker.userBind(dn: "uid=x,dc=x", password: Secret("pw")) {
                seen.withLock { $0 = e.message }
            }
            return 1
        }
        #expect(r == .failure(.timedOut))
        for _ in 0..<200 where seen.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(20)) }
        #expect(seen.withLock { $0 }?.contains("answered at its deadline") == true)
        pool.shutdown()
        #expect(await pool.waitForThreads(limit: .seconds(4)))
    }
}
