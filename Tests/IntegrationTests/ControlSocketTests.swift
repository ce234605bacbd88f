import Foundation
import Testing

/// `saslgate stats` and `saslgate penalty` against the running daemon's control socket.
@Suite(.serialized) struct ControlSocketTests {
    func saslgate(_ args: [String]) throws -> (code: Int32, out: String) { try runBuilt("saslgate", args) }

    @Test func statsAndPenalties() throws {
        let d = try DaemonUnderTest(extraConfig: "penalty_block_after = 3")
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.1\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
        for id in 2...4 {
            c.send("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\trip=203.0.113.5\tresp=\(b64("\0test\0wrong\(id)"))\n")
            #expect(c.readLine() == "FAIL\t\(id)\tuser=test@example.org")
        }
        // Cool-down: even the right password is refused at once from that IP; another IP gets in.
        c.send("AUTH\t5\tPLAIN\tservice=smtp\tsecured\trip=203.0.113.5\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "FAIL\t5\treason=Too many failed authentication attempts; try again later")  // IP blocked: refused before the name is read
        c.send("AUTH\t6\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.1\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t6\tuser=test@example.org")

        let stats = try saslgate(["stats", "-c", d.configPath])
        #expect(stats.code == 0, "\(stats.out)")
        #expect(stats.out.contains("saslgate_auth_requests_total{result=\"ok\",mechanism=\"PLAIN\",passdb=\"passwd-file:\(d.usersPath)\"} 2"))
        #expect(stats.out.contains("saslgate_auth_requests_total{result=\"failed\",mechanism=\"PLAIN\",passdb=\"passwd-file:\(d.usersPath)\"} 3"))
        #expect(stats.out.contains("saslgate_auth_duration_seconds_bucket"))
        #expect(stats.out.contains("saslgate_connections 1"))

        let list = try saslgate(["penalty", "list", "--control", d.dir + "/control"])
        #expect(list.code == 0)
        #expect(list.out.contains("ip 203.0.113.5 failures=3"))
        #expect(list.out.contains("blocked"))
        let clear = try saslgate(["penalty", "clear", "--control", d.dir + "/control", "203.0.113.5"])
        #expect(clear.out.contains("cleared 2"))
        c.send("AUTH\t7\tPLAIN\tservice=smtp\tsecured\trip=203.0.113.5\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine() == "OK\t7\tuser=test@example.org")
        #expect(d.log.contains("penalty cleared by the control socket"))
        // The control socket is private.
        var st = stat()
        #expect(stat(d.dir + "/control", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
    }
}
