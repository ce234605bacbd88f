import AuthCore
import Foundation
import Passdb
@testable import PassdbPAM
import Testing

/// Real PAM stacks from a temporary confdir (`pam_start_confdir`): no root needed.
@Suite("PAM passdb with real modules")
struct PAMPassdbTests {
    @Test func permitAndDeny() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try dir.service("permit", ["auth required pam_permit.so", "account required pam_permit.so"])
        try dir.service("deny", ["auth required pam_deny.so", "account required pam_permit.so"])
        try dir.service("deny-account", ["auth required pam_permit.so", "account required pam_deny.so"])
        let permit = try makePassdb(dir, service: "permit")
        let deny = try makePassdb(dir, service: "deny")
        let denyAccount = try makePassdb(dir, service: "deny-account")
        #expect(await permit.verifyPlain(request("anyone"), password: Secret("x")) == .ok)
        #expect(await deny.verifyPlain(request("anyone"), password: Secret("x")) == .passwordMismatch)
        // pam_deny's account hook answers PAM_AUTH_ERR.
        #expect(await denyAccount.verifyPlain(request("anyone"), password: Secret("x")) == .passwordMismatch)
        #expect(permit.statistics.completed == 1)
    }

    @Test func emptyOrNULPasswordNeverReachesPAM() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try dir.service("permit", ["auth required pam_permit.so", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "permit")
        #expect(await db.verifyPlain(request("alice"), password: Secret("")) == .passwordMismatch)
        #expect(await db.verifyPlain(request("alice"), password: Secret([0x61, 0x00, 0x62])) == .passwordMismatch)
        #expect(await db.verifyPlain(request("a\u{0}b"), password: Secret("x")) == .userUnknown)
        #expect(db.statistics.completed == 0)
    }

    @Test func pwdfileGoodBadUnknown() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let table = try dir.pwdfile("users", [("alice", "s3cret-A"), ("bob", "pässwörd 2")])
        try dir.service("pwdfile", ["auth required pam_pwdfile.so pwdfile=\(table)", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "pwdfile")
        #expect(await db.verifyPlain(request("alice"), password: Secret("s3cret-A")) == .ok)
        #expect(await db.verifyPlain(request("alice"), password: Secret("s3cret-a")) == .passwordMismatch)
        #expect(await db.verifyPlain(request("bob"), password: Secret("pässwörd 2")) == .ok)
        #expect(await db.verifyPlain(request("bob"), password: Secret("pässwörd")) == .passwordMismatch)
        // pam_pwdfile says PAM_AUTH_ERR for a name not in its table (like pam_unix can): a mismatch.
        let unknown = await db.verifyPlain(request("nobody"), password: Secret("s3cret-A"))
        #expect(unknown == .passwordMismatch || unknown == .userUnknown)
    }

    @Test func realmStrippingVariants() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let table = try dir.pwdfile("users", [("alice", "pw-alice"), ("carol@other.org", "pw-carol")])
        try dir.service("pwdfile", ["auth required pam_pwdfile.so pwdfile=\(table)", "account required pam_permit.so"])
        func check(_ mode: RealmStripping, _ user: String, _ password: String) async throws -> PassdbResult {
            let db = try makePassdb(dir, service: "pwdfile", options: PAMOptions(stripRealm: mode), defaultRealm: "example.org")
            return await db.verifyPlain(request(user), password: Secret(password))
        }
        // default: strip only the default realm
        #expect(try await check(.default, "alice@example.org", "pw-alice") == .ok)
        #expect(try await check(.default, "alice@EXAMPLE.ORG", "pw-alice") == .ok)
        #expect(try await check(.default, "alice", "pw-alice") == .ok)
        #expect(try await check(.default, "alice@other.org", "pw-alice") != .ok)
        #expect(try await check(.default, "carol@other.org", "pw-carol") == .ok)
        // all: any realm stripped
        #expect(try await check(.all, "alice@other.org", "pw-alice") == .ok)
        #expect(try await check(.all, "carol@other.org", "pw-carol") != .ok)
        // none: the name as sent
        #expect(try await check(.none, "alice@example.org", "pw-alice") != .ok)
        #expect(try await check(.none, "alice", "pw-alice") == .ok)
        #expect(try await check(.none, "carol@other.org", "pw-carol") == .ok)
    }

    @Test func passwordReachesPAMByteExact() async throws {
        // pam_exec expose_authtok prompts (PAM_PROMPT_ECHO_OFF) and pipes the answer to the script.
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let expected = try dir.file("expected", "Zürich:  pa$$ \\ 'q' \"dq\" ✓", mode: 0o600)
        let script = try dir.file(
            "check.sh",
            """
            #!/bin/sh
            # stdin: the password, NUL-terminated
            got=$(tr -d '\\000')
            want=$(cat "\(expected)")
            [ "$got" = "$want" ] && [ "$PAM_USER" = alice ] && [ "$PAM_RHOST" = 192.0.2.7 ] && \
              [ "$PAM_TTY" = saslgate ] && [ "$PAM_SERVICE" = exec ]
            """, mode: 0o700)
        try dir.service("exec", ["auth required pam_exec.so quiet expose_authtok \(script)", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "exec")
        #expect(await db.verifyPlain(request("alice@example.org"), password: Secret("Zürich:  pa$$ \\ 'q' \"dq\" ✓")) == .ok)
        #expect(await db.verifyPlain(request("alice@example.org"), password: Secret("Zürich")) != .ok)
        #expect(await db.verifyPlain(request("alice", rip: "198.51.100.1"), password: Secret("Zürich:  pa$$ \\ 'q' \"dq\" ✓")) != .ok)
    }

    /// PAM_RUSER would be the client's own choice of name, which pam_rhosts and the like trust as a
    /// remote user vouched for by the remote host: it stays unset; PAM_RHOST is the client's address.
    @Test func remoteUserIsNotTheClientChosenName() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let seen = dir.path + "/seen"
        let script = try dir.file(
            "record.sh",
            """
            #!/bin/sh
            printf 'ruser=%s|rhost=%s|user=%s\n' "${PAM_RUSER-<unset>}" "${PAM_RHOST-<unset>}" "$PAM_USER" > "\(seen)"
            """, mode: 0o700)
        try dir.service("record", ["auth required pam_exec.so quiet \(script)", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "record")
        #expect(await db.verifyPlain(request("alice@example.org", rip: "198.51.100.4"), password: Secret("pw")) == .ok)
        let fields = try String(contentsOfFile: seen, encoding: .utf8).trimmingCharacters(in: .newlines)
            .split(separator: "|").map(String.init)
        #expect(fields.count == 3, "\(fields)")
        #expect(fields.first == "ruser=<unset>" || fields.first == "ruser=", "\(fields)")
        #expect(fields.dropFirst().first == "rhost=198.51.100.4")
        #expect(fields.last == "user=alice")
    }

    @Test func failDelayDoesNotHoldTheThread() async throws {
        // pam_faildelay asks libpam for a 30 s delay on failure; our PAM_FAIL_DELAY function skips it.
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try dir.service(
            "slowfail", ["auth optional pam_faildelay.so delay=30000000", "auth required pam_deny.so", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "slowfail")
        let (result, seconds) = await timed { await db.verifyPlain(request("alice"), password: Secret("wrong")) }
        #expect(result == .passwordMismatch)
        // The module asks for 30 s; far below that means it was not slept (wide margin for a busy CI).
        #expect(seconds < 10, "took \(seconds)s: the PAM failure delay was not overridden")
    }

    @Test func missingServiceOrConfDirIsNeverOK() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let log = CapturedLog()
        let db = try makePassdb(dir, service: "no-such-service", logger: log.logger)
        #expect(log.all.contains { $0.contains("missing or unreadable") })
        let r = await db.verifyPlain(request("alice"), password: Secret("x"))
        #expect(r != .ok)
        guard case .internalFailure = r else {
            Issue.record("expected internalFailure for a missing service, got \(r)")
            return
        }
        let broken = try PAMPassdb(
            service: "permit", options: PAMOptions(confDir: dir.path + "/missing-dir"), defaultRealm: nil, logger: quietLogger)
        #expect(await broken.verifyPlain(request("alice"), password: Secret("x")) != .ok)
    }

    @Test func brokenModuleIsInternalFailure() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try dir.service("broken", ["auth required pam_does_not_exist.so", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "broken")
        let r = await db.verifyPlain(request("alice"), password: Secret("x"))
        guard case .internalFailure = r else {
            Issue.record("expected internalFailure for a stack with a missing module, got \(r)")
            return
        }
    }

    @Test func moduleMessagesAreLoggedSanitizedAndPasswordNever() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let table = try dir.pwdfile("users", [("alice", "Tr0ub4dor&3-secret")])
        try dir.service(
            "echo",
            [
                "auth optional pam_echo.so hello %u from %H",
                "auth required pam_pwdfile.so pwdfile=\(table)",
                "account required pam_permit.so",
            ])
        let log = CapturedLog()
        let db = try makePassdb(dir, service: "echo", logger: log.logger)
        #expect(await db.verifyPlain(request("alice"), password: Secret("Tr0ub4dor&3-secret")) == .ok)
        #expect(await db.verifyPlain(request("alice"), password: Secret("Tr0ub4dor&3-wrong")) == .passwordMismatch)
        let lines = log.all
        #expect(lines.contains { $0.contains("PAM module message: info: hello alice from 192.0.2.7") })
        #expect(!lines.contains { $0.contains("Tr0ub4dor") }, "a password reached the log")
    }

    @Test func concurrentVerificationsAreAllCorrect() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        let users = (0..<8).map { ("user\($0)", "password-\($0)") }
        let table = try dir.pwdfile("users", users)
        try dir.service("pwdfile", ["auth required pam_pwdfile.so pwdfile=\(table)", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "pwdfile", options: PAMOptions(maxConcurrency: 8, timeout: .seconds(9)))
        let results = await withTaskGroup(of: (Int, PassdbResult).self) { group in
            for i in 0..<64 {
                group.addTask {
                    let (user, password) = users[i % users.count]
                    let given = i % 3 == 0 ? password + "x" : password
                    return (i, await db.verifyPlain(request(user), password: Secret(given)))
                }
            }
            var all: [Int: PassdbResult] = [:]
            for await (i, r) in group { all[i] = r }
            return all
        }
        #expect(results.count == 64)
        for i in 0..<64 {
            #expect(results[i] == (i % 3 == 0 ? .passwordMismatch : .ok), "request \(i)")
        }
        let stats = db.statistics
        #expect(stats.threads <= 8)
        #expect(stats.timeouts == 0 && stats.rejected == 0 && stats.completed == 64)
    }
}

/// Hung modules: `pam_exec` running a script that sleeps for users named `hang*`.
@Suite("PAM timeouts and the thread pool")
struct PAMTimeoutTests {
    func hangService(_ dir: PAMConfDir, seconds: Double) throws {
        let script = try dir.file(
            "hang.sh",
            """
            #!/bin/sh
            case "$PAM_USER" in hang*) exec /bin/sleep \(seconds) ;; esac
            exit 0
            """, mode: 0o700)
        try dir.service("hang", ["auth required pam_exec.so quiet \(script)", "account required pam_permit.so"])
    }

    @Test func hungCallTimesOutAndIsReplacedUpToTheCap() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        // Timings are far apart (a 3 s timeout against a 15 s hang) so a loaded CI machine cannot blur them.
        try hangService(dir, seconds: 15)
        let db = try makePassdb(
            dir, service: "hang", options: PAMOptions(maxConcurrency: 1, maxQueue: 4, maxStuck: 1, timeout: .seconds(3)))
        let t0 = ContinuousClock.now

        // 1. A hung module: the caller gets a temporary failure after ~3 s, not after 15 s.
        let (first, s1) = await timed { await db.verifyPlain(request("hang1"), password: Secret("x")) }
        #expect(first == .internalFailure("PAM timed out"))
        #expect(s1 >= 2.9 && s1 < 10, "took \(s1)s")
        var stats = db.statistics
        #expect(stats.stuck == 1 && stats.timeouts == 1)

        // 2. The stuck thread is replaced: other users still get answers.
        #expect(await db.verifyPlain(request("alice"), password: Secret("x")) == .ok)

        // 3. The replacement hangs too: now 2 threads are stuck = maxConcurrency + maxStuck, the cap.
        #expect(await db.verifyPlain(request("hang2"), password: Secret("x")) == .internalFailure("PAM timed out"))
        stats = db.statistics
        #expect(stats.stuck == 2 && stats.threads == 0)

        // 4. No thread may be added: refused at once rather than queued into a certain timeout.
        let (refused, s4) = await timed { await db.verifyPlain(request("alice"), password: Secret("x")) }
        #expect(refused == .internalFailure("PAM busy (all threads stuck)"))
        #expect(s4 < 2.5)  // queued, it would wait out the 3 s timeout

        // 5. When the first hung call returns (15 s after it started) its thread rejoins the pool.
        #expect(await eventually(30) { db.statistics.stuck < 2 })
        #expect(ContinuousClock.now - t0 >= .seconds(14))
        #expect(await db.verifyPlain(request("alice"), password: Secret("x")) == .ok)
        // The second hung call (started a few seconds after the first) returns 15 s after its start.
        #expect(await eventually(25) { db.statistics.stuck == 0 })
        #expect(db.statistics.threads <= 1)
    }

    @Test func fullQueueIsRefusedAtOnce() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        // Far-apart timings (a 6 s call, the longest allowed timeout 9 s, "at once" < 3 s) so a loaded machine
        // cannot blur them.
        try hangService(dir, seconds: 6)
        let db = try makePassdb(
            dir, service: "hang", options: PAMOptions(maxConcurrency: 1, maxQueue: 1, maxStuck: 1, timeout: .seconds(9)))
        async let slow = db.verifyPlain(request("hang-a"), password: Secret("x"))
        #expect(await eventually(15) { let s = db.statistics; return s.threads == 1 && s.idle == 0 && s.queued == 0 })
        async let queued = db.verifyPlain(request("alice"), password: Secret("x"))
        #expect(await eventually(15) { db.statistics.queued == 1 })
        let (busy, seconds) = await timed { await db.verifyPlain(request("bob"), password: Secret("x")) }
        #expect(busy == .internalFailure("PAM busy"))
        #expect(seconds < 3)  // refused at once; queued it would wait for the 6 s call
        // The slow call finishes in time (6 s < 9 s) and the queued one runs after it.
        #expect(await slow == .ok)
        #expect(await queued == .ok)
        let stats = db.statistics
        #expect(stats.rejected == 1 && stats.timeouts == 0 && stats.completed == 2)
    }

    @Test func queuedCallsTimeOutToo() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        // A 3 s deadline leaves the test seconds to queue its second call before the first is written off
        // (a loaded machine); the hung call lasts far longer than either deadline.
        try hangService(dir, seconds: 20)
        let db = try makePassdb(
            dir, service: "hang", options: PAMOptions(maxConcurrency: 1, maxQueue: 8, maxStuck: 0, timeout: .seconds(3)))
        async let a = db.verifyPlain(request("hang-a"), password: Secret("x"))
        #expect(await eventually(15) { db.statistics.threads == 1 && db.statistics.queued == 0 })
        // Waits in the queue behind the hung call; its deadline counts from the request, queueing included.
        let (b, seconds) = await timed { await db.verifyPlain(request("alice"), password: Secret("x")) }
        #expect(b == .internalFailure("PAM timed out"))
        // 3 s deadline counted from the request; the hung call lasts 20 s: it must not wait for it.
        #expect(seconds < 10)
        #expect(await a == .internalFailure("PAM timed out"))
        // maxStuck 0: the stuck thread is not replaced; with no thread left, refused at once.
        #expect(await db.verifyPlain(request("alice"), password: Secret("x")) == .internalFailure("PAM busy (all threads stuck)"))
    }

    @Test func cancellationAnswersAtOnce() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try hangService(dir, seconds: 8)
        let db = try makePassdb(dir, service: "hang", options: PAMOptions(maxConcurrency: 1, timeout: .seconds(9)))
        let task = Task { await db.verifyPlain(request("hang-c"), password: Secret("x")) }
        #expect(await eventually(15) { let s = db.statistics; return s.threads == 1 && s.idle == 0 && s.queued == 0 })
        task.cancel()
        let (r, seconds) = await timed { await task.value }
        #expect(r == .internalFailure("PAM check cancelled"))
        #expect(seconds < 4)  // the call itself still has 8 s to run
        // Not counted as stuck: the call still finishes on its thread and the thread stays in the pool.
        #expect(db.statistics.stuck == 0)
        #expect(await db.verifyPlain(request("alice"), password: Secret("x")) == .ok)
    }

    @Test func cancelledCallThatHangsIsStillCountedStuck() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        // The cancel must land before the 6 s deadline; the call hangs well past it.
        try hangService(dir, seconds: 20)
        let db = try makePassdb(dir, service: "hang", options: PAMOptions(maxConcurrency: 1, timeout: .seconds(6)))
        let task = Task { await db.verifyPlain(request("hang-d"), password: Secret("x")) }
        #expect(await eventually(15) { let s = db.statistics; return s.threads == 1 && s.idle == 0 && s.queued == 0 })
        task.cancel()
        #expect(await task.value == .internalFailure("PAM check cancelled"))
        #expect(db.statistics.stuck == 0)
        // At its deadline the call is still running: its thread is written off and replaced.
        #expect(await eventually(15) { db.statistics.stuck == 1 })
        #expect(db.statistics.timeouts == 0)
        #expect(await db.verifyPlain(request("alice"), password: Secret("x")) == .ok)
    }

    @Test func idleThreadsExitAndShutdownRefuses() async throws {
        let dir = try PAMConfDir()
        defer { dir.remove() }
        try dir.service("permit", ["auth required pam_permit.so", "account required pam_permit.so"])
        let db = try makePassdb(dir, service: "permit", options: PAMOptions(maxConcurrency: 4))
        #expect(await db.verifyPlain(request("a"), password: Secret("x")) == .ok)
        #expect(db.statistics.threads == 1)
        db.shutdown()
        #expect(await eventually { db.statistics.threads == 0 })
        #expect(await db.verifyPlain(request("a"), password: Secret("x")) == .internalFailure("PAM passdb shut down"))
    }
}
