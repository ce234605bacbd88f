import AuthCore
import Foundation
import Passdb
import PassdbPAM
import Testing

/// Removes `sgtest*` users left by a crashed earlier run, once per process.
private let staleUsersRemoved: Bool = {
    SystemUsers.removeStale(prefix: SystemUsers.prefix)
    return true
}()

/// pam_unix against throwaway system users (useradd + chpasswd). Root only: pam_unix reads
/// /etc/shadow itself only as root, and only root can add users. Serialized: useradd/userdel take the
/// /etc/passwd lock.
@Suite("pam_unix with throwaway system users (root)", .serialized, .enabled(if: SystemUsers.isRoot, "needs root"))
struct PAMUnixTests {
    static let password = "Unix-pw 42!"

    /// Runs `body` with a fresh user `sgtest<pid><tag>` and a pam_unix (auth + account) service.
    func withUser(_ tag: String, _ body: (String, PAMPassdb) async throws -> Void) async throws {
        _ = staleUsersRemoved
        let user = "\(SystemUsers.prefix)\(getpid() % 100_000)\(tag)"
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try dir.service("unix", ["auth required pam_unix.so", "account required pam_unix.so"])
        try SystemUsers.create(user, password: PAMUnixTests.password)
        defer { SystemUsers.delete(user) }
        let db = try makePassdb(dir, service: "unix", defaultRealm: "example.org")
        try await body(user, db)
    }

    @Test func goodBadUnknown() async throws {
        try await withUser("a") { user, db in
            #expect(await db.verifyPlain(request(user), password: Secret(PAMUnixTests.password)) == .ok)
            #expect(await db.verifyPlain(request("\(user)@example.org"), password: Secret(PAMUnixTests.password)) == .ok)
            #expect(await db.verifyPlain(request("\(user)@other.org"), password: Secret(PAMUnixTests.password)) != .ok)
            #expect(await db.verifyPlain(request(user), password: Secret("Unix-pw 43!")) == .passwordMismatch)
            let unknown = await db.verifyPlain(request("\(user)-nope"), password: Secret(PAMUnixTests.password))
            // pam_unix answers PAM_USER_UNKNOWN (some versions PAM_AUTH_ERR) for a name it does not know.
            #expect(unknown == .userUnknown || unknown == .passwordMismatch)
        }
    }

    @Test func wrongPasswordReturnsWellUnderTwoSeconds() async throws {
        try await withUser("b") { user, db in
            let (r, seconds) = await timed { await db.verifyPlain(request(user), password: Secret("wrong")) }
            #expect(r == .passwordMismatch)
            // pam_unix sleeps about 2 s (±25 %) after a failure unless PAM_FAIL_DELAY is overridden.
            // Compare with a successful check, which hashes the same way, so machine load cancels out.
            let (ok, baseline) = await timed { await db.verifyPlain(request(user), password: Secret(PAMUnixTests.password)) }
            #expect(ok == .ok)
            #expect(seconds - baseline < 1.0, "pam_unix's failure delay held the call for \(seconds)s (success took \(baseline)s)")
        }
    }

    @Test func expiredAccountIsDisabled() async throws {
        try await withUser("c") { user, db in
            try SystemUsers.chage(["-E", "0", user])
            #expect(await db.verifyPlain(request(user), password: Secret(PAMUnixTests.password)) == .userDisabled(reason: "account expired"))
            // A wrong password still is just a mismatch: the account state is not revealed without it.
            #expect(await db.verifyPlain(request(user), password: Secret("wrong")) == .passwordMismatch)
        }
    }

    @Test func passwordChangeRequiredIsPasswordExpired() async throws {
        try await withUser("d") { user, db in
            try SystemUsers.chage(["-d", "0", user])
            #expect(await db.verifyPlain(request(user), password: Secret(PAMUnixTests.password)) == .passwordExpired)
            #expect(await db.verifyPlain(request(user), password: Secret("wrong")) == .passwordMismatch)
        }
    }

    @Test func lockedAccountIsNotOK() async throws {
        try await withUser("e") { user, db in
            let (rc, out) = try SystemUsers.run(["/usr/sbin/usermod", "-L", user])
            #expect(rc == 0, "usermod -L: \(out)")
            #expect(await db.verifyPlain(request(user), password: Secret(PAMUnixTests.password)) == .passwordMismatch)
        }
    }

    @Test func staleUsersAreCleanedUp() async throws {
        let stale = "\(SystemUsers.prefix)stale\(getpid() % 10_000)"
        try SystemUsers.create(stale, password: "x-stale-1")
        #expect(SystemUsers.existing(prefix: stale) == [stale])
        SystemUsers.removeStale(prefix: stale)
        #expect(SystemUsers.existing(prefix: stale).isEmpty)
    }
}
