import Foundation
import Testing

/// End-to-end protocol tests against the built saslgated on a temporary socket.
@Suite(.serialized) struct DaemonProtocolTests {
    @Test func greetingIsCompleteAndOrdered() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        let g = c.readGreeting()  // sent unprompted
        #expect(g.count == 7)
        #expect(g[0] == "VERSION\t1\t2")
        #expect(g[1] == "MECH\tPLAIN\tplaintext")
        #expect(g[2] == "MECH\tLOGIN\tplaintext")
        #expect(g[3].hasPrefix("SPID\t"))
        #expect(g[4] == "CUID\t1")
        #expect(g[5].range(of: "^COOKIE\t[0-9a-f]{32}$", options: .regularExpression) != nil)
        #expect(g[6] == "DONE")
        let c2 = try d.connect()
        #expect(c2.readGreeting()[4] == "CUID\t2")
    }

    @Test func postfixTranscript() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        let common = "service=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured"
        c.send("AUTH\t1\tPLAIN\t\(common)\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
        c.send("AUTH\t2\tPLAIN\t\(common)\tresp=\(b64("\0test\0wrong"))\n")
        #expect(c.readLine() == "FAIL\t2\tuser=test@example.org")
        c.send("AUTH\t3\tPLAIN\t\(common)\n")
        #expect(c.readLine() == "CONT\t3\t")
        c.send("CONT\t3\t\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t3\tuser=test@example.org")
        c.send("AUTH\t4\tLOGIN\t\(common)\n")
        #expect(c.readLine() == "CONT\t4\tVXNlcm5hbWU6")
        c.send("CONT\t4\t\(b64("alice"))\n")
        #expect(c.readLine() == "CONT\t4\tUGFzc3dvcmQ6")
        c.send("CONT\t4\t\(b64("alice-secret"))\n")
        #expect(c.readLine() == "OK\t4\tuser=alice@example.org")
        // SMTP client aborts with "*": Postfix sends nothing and simply goes on with a new id.
        c.send("AUTH\t5\tLOGIN\t\(common)\n")
        #expect(c.readLine() == "CONT\t5\tVXNlcm5hbWU6")
        c.send("AUTH\t6\tplain\t\(common)\tresp=\(b64("\0bob\0bobpass"))\n")
        #expect(c.readLine() == "OK\t6\tuser=bob@example.org")
        // Without TLS Postfix sends no `secured`: cleartext is refused with a reason Postfix shows.
        c.send("AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "FAIL\t7\treason=Plaintext authentication disallowed on non-secure (SSL/TLS) connections")
    }

    @Test func eximBefore499Transcript() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.readGreeting()  // Exim < 4.99 reads the whole greeting first
        c.send("VERSION\t1\t0\nCPID\t777\nAUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.7\tlip=192.0.2.1\tnologin\tresp=\n")
        #expect(c.readLine() == "CONT\t1\t")  // empty resp= from minor 0 means "no initial response"
        c.send("CONT\t1\t\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
    }

    @Test func doveadmTranscript() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.send("VERSION\t1\t2\nCPID\t1942\n")
        c.readGreeting()
        c.send("AUTH\t1\tPLAIN\tservice=doveadm\tdebug\tsecured\tresp=\(b64("test\0test\0testpass"))\n")
        // `debug` (doveadm with auth_debug) also names the passdb that answered.
        #expect(c.readLine() == "OK\t1\tuser=test@example.org\tpassdb=passwd-file:\(d.usersPath)")
        c.send("AUTH\t3\tPLAIN\tservice=doveadm\tsecured\tresp=\(b64("test\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t3\tuser=test@example.org")
        c.send("AUTH\t2\tPLAIN\tservice=doveadm\tsecured\tresp=\n")  // minor 2: empty response, fails
        #expect(c.readLine() == "FAIL\t2")
    }

    @Test func pipelinedHandshakeInOnePacket() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.send("VERSION\t1\t0\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readGreeting().last == "DONE")
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
    }

    @Test func manyRequestsInFlightAnswerInAnyOrder() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        var expected = Set<String>()
        var batch = ""
        for id in 1...200 {
            let good = id % 3 != 0
            let user = id % 2 == 0 ? "alice" : "test"
            let pass = good ? (user == "alice" ? "alice-secret" : "testpass") : "nope"
            batch += "AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0\(user)\0\(pass)"))\n"
            expected.insert(good ? "OK\t\(id)\tuser=\(user)@example.org" : "FAIL\t\(id)\tuser=\(user)@example.org")
        }
        c.send(batch)
        var got = Set<String>()
        while got.count < 200, let line = c.readLine(timeout: 20) { got.insert(line) }
        #expect(got == expected)
    }

    @Test func thousandConnectionsAtOnce() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        var clients: [AuthClient] = []
        for _ in 0..<1000 { clients.append(try d.connect()) }
        for (i, c) in clients.enumerated() {
            c.send("VERSION\t1\t0\nCPID\t\(i + 1)\nAUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0bob\0bobpass"))\n")
        }
        var ok = 0
        for c in clients {
            c.readGreeting()
            if c.readLine(timeout: 20) == "OK\t1\tuser=bob@example.org" { ok += 1 }
        }
        #expect(ok == 1000)
    }

    @Test func idleConnectionsAreNotClosed() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        #expect(c.readLine(timeout: 3) == nil)  // nothing, no close
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
    }

    /// Each violation closes only the offending connection; a bystander keeps working.
    @Test(arguments: [
        "HELLO\n",
        "auth\t1\tPLAIN\tservice=smtp\n",
        "AUTH\t0\tPLAIN\tservice=smtp\n",
        "AUTH\t4294967296\tPLAIN\tservice=smtp\n",
        "AUTH\t1\tFOO\tservice=smtp\n",
        "AUTH\t1\tPLAIN\n",
        "AUTH\t1\tPLAIN\tservice=smtp\tresp=AAAA\tx\n",
        "AUTH\t1\tLOGIN\tservice=smtp\tsecured\nAUTH\t1\tLOGIN\tservice=smtp\tsecured\n",
        "CONT\t1\n",
        "CANCEL\tabc\n",
        "\n",
        "VERSION\t1\t0\n",
        "AUTH\t1\tPL\u{0}AIN\tservice=smtp\n",
        "AUTH\t1\tPLAIN\tservice=smtp\tresp=" + String(repeating: "A", count: 16400) + "\n",
        String(repeating: "A", count: 20000),  // no LF at all
    ])
    func violationsCloseOnlyThatConnection(badInput: String) throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let bystander = try d.connect()
        bystander.postfixHandshake()
        let c = try d.connect()
        c.postfixHandshake()
        c.send(badInput)
        #expect(c.isClosedByServer(), "connection stayed open after \(badInput.prefix(40).debugDescription)")
        bystander.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(bystander.readLine() == "OK\t1\tuser=test@example.org")
        #expect(d.log.contains("protocol violation"))
    }

    @Test func handshakeViolations() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        for bad in ["VERSION\t2\t0\n", "VERSION\t1\n", "CPID\t1\n", "VERSION\t1\t0\nCPID\t0\n", "VERSION\t1\t0\nAUTH\t1\tPLAIN\tservice=smtp\n"] {
            let c = try d.connect()
            c.send(bad)
            #expect(c.isClosedByServer(), "\(bad.debugDescription)")
        }
    }

    @Test func longestLegalLineIsAccepted() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        // 16383 bytes before LF: accepted (its base64 is invalid, so an immediate FAIL, but no close).
        let prefix = "AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp="
        let line = prefix + String(repeating: "A", count: 16383 - prefix.utf8.count - 1) + "="
        #expect(line.utf8.count == 16383)
        c.send(line + "\n")
        #expect(c.readLine()?.hasPrefix("FAIL\t1") == true)
        c.send(line + "A\n")  // 16384: closed
        #expect(c.isClosedByServer())
    }

    @Test func recoverableErrorsKeepTheConnection() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=AHRlc3QAdGVzdHBhc3M\n")
        #expect(c.readLine() == "FAIL\t1\tcode=invalid_base64\treason=Invalid base64 data in initial response")
        c.send("CONT\t9\tAAAA\n")
        #expect(c.readLine() == "FAIL\t9\treason=Authentication request timed out")
        c.send("AUTH\t2\tLOGIN\tservice=smtp\tsecured\n")
        #expect(c.readLine() == "CONT\t2\tVXNlcm5hbWU6")
        c.send("CONT\t2\t@@@@\n")
        #expect(c.readLine() == "FAIL\t2\tcode=invalid_base64\treason=Invalid base64 data in continued response")
        c.send("CANCEL\t12345\n")
        c.send("AUTH\t3\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t3\tuser=test@example.org")
    }

    @Test func userTableReloadsAndKeepsLastGood() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        func auth(_ user: String, _ pass: String) throws -> String? {
            let c = try d.connect()
            c.postfixHandshake()
            c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0\(user)\0\(pass)"))\n")
            return c.readLine()
        }
        #expect(try auth("carol", "c-pass") == "FAIL\t1\tuser=carol@example.org")
        try (DaemonUnderTest.users + "\ncarol:{PLAIN}c-pass\n").write(toFile: d.usersPath, atomically: true, encoding: .utf8)
        // The promise (docs/SECURITY.md): the first request that starts more than the check interval (1 s)
        // after the change sees it. No polling.
        usleep(1_200_000)
        #expect(try auth("carol", "c-pass") == "OK\t1\tuser=carol@example.org")
        // A broken table is refused; the last good one stays in service.
        try (DaemonUnderTest.users + "\ncarol:{PLAIN}c-pass\nbroken line without colon\n").write(toFile: d.usersPath, atomically: true, encoding: .utf8)
        usleep(1_200_000)
        #expect(try auth("carol", "c-pass") == "OK\t1\tuser=carol@example.org")
        #expect(d.log.contains("users:6") || d.log.contains("line 6"), "log should name the broken line: \(d.log)")
    }

    @Test func passwordsNeverReachTheLog() throws {
        let d = try DaemonUnderTest(extraConfig: "")
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        let secret = "Sup3rS3cret-Pa55"
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0\(secret)"))\n")
        _ = c.readLine()
        c.send("AUTH\t2\tLOGIN\tservice=smtp\tsecured\n")
        _ = c.readLine()
        c.send("CONT\t2\t\(b64("alice"))\n")
        _ = c.readLine()
        c.send("CONT\t2\t\(b64(secret))\n")
        _ = c.readLine()
        c.send("AUTH\t3\tPLAIN\tservice=smtp\tresp=\(b64("\0test\0\(secret)"))\n")
        _ = c.readLine()
        c.send("AUTH\t4\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0\(secret)"))\tx\n")  // violation
        _ = c.isClosedByServer()
        let log = d.log
        #expect(log.contains("auth failed"))
        #expect(!log.contains(secret))
        #expect(!log.contains(b64("\0test\0\(secret)")))
        #expect(!log.contains(b64(secret)))
        #expect(!log.contains("testpass"))
    }

    @Test func refusesToClobberALiveSocketOrAFile() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        // A second daemon on the same socket must refuse to start (the first one is alive).
        let p = Process()
        p.executableURL = URL(fileURLWithPath: builtExecutable("saslgated"))
        p.arguments = ["-c", d.configPath]
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        let c = try d.connect()
        c.postfixHandshake()
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
    }

    @Test func checkModeReportsErrorsWithFileAndLine() throws {
        let dir = NSTemporaryDirectory() + "saslgate-check-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "listen = \(dir)/s\npassdbs = passwd-file:\(dir)/users\nfailure_delay = 30\nbogus = 1\n".write(toFile: dir + "/c.conf", atomically: true, encoding: .utf8)
        try "u@x:{PLAIN}p\nu@x:{PLAIN}q\n".write(toFile: dir + "/users", atomically: true, encoding: .utf8)
        let check = { try runBuilt("saslgated", ["-c", dir + "/c.conf", "--check"]) }
        let first = try check()
        #expect(first.code == 78)
        #expect(first.out.contains("c.conf:3: failure_delay"))
        #expect(first.out.contains("c.conf:4: unknown parameter 'bogus'"))

        try "listen = \(dir)/s\npassdbs = passwd-file:\(dir)/users\n".write(toFile: dir + "/c.conf", atomically: true, encoding: .utf8)
        // A world-readable user table is refused with the fix.
        chmod(dir + "/users", 0o644)
        let readable = try check()
        #expect(readable.code == 78)
        #expect(readable.out.contains("readable by everyone; fix with: chmod o-r"))
        chmod(dir + "/users", 0o640)
        let (code2, out2) = try check()
        #expect(code2 == 78)
        #expect(out2.contains("users:2"), "duplicate user must be reported with file:line: \(out2)")
    }
}
