import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `client_allowlist`: every entry must name a user or group (`--check`, start and reload say which one,
/// with file:line), and SIGHUP reads it again for the connections made after the reload.
@Suite(.serialized) struct AllowlistTests {
    /// The line of the first line of `file` that starts with `key`.
    func line(of key: String, in file: String) throws -> Int {
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        return try #require(lines.firstIndex { $0.hasPrefix(key) }) + 1
    }

    @Test func checkNamesEveryUnknownUserAndGroup() throws {
        let dir = NSTemporaryDirectory() + "saslgate-allow-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "u@x:{PLAIN}p\n".write(toFile: dir + "/users", atomically: true, encoding: .utf8)
        chmod(dir + "/users", 0o640)
        let config = dir + "/c.conf"
        try "listen = \(dir)/s\npassdbs = passwd-file:\(dir)/users\nclient_allowlist = root\n  nosuchuser-sg @nosuchgroup-sg 0\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try runBuilt("saslgated", ["-c", config, "--check"])
        #expect(bad.code == 78)
        #expect(bad.out.contains("c.conf:3: client_allowlist: no such user 'nosuchuser-sg'"), "\(bad.out)")
        #expect(bad.out.contains("c.conf:3: client_allowlist: no such group 'nosuchgroup-sg'"), "\(bad.out)")
        #expect(!bad.out.contains("'root'") && !bad.out.contains("'0'"))
        // Starting with it is the same configuration error, before anything is bound.
        let start = try runBuilt("saslgated", ["-c", config])
        #expect(start.code == 78)
        #expect(start.out.contains("configuration error: \(config):3: client_allowlist: no such user 'nosuchuser-sg'"), "\(start.out)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/s"))

        try "listen = \(dir)/s\npassdbs = passwd-file:\(dir)/users\nclient_allowlist = root @root 0\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let good = try runBuilt("saslgated", ["-c", config, "--check"])
        #expect(good.code == 0, "\(good.out)")
    }

    @Test func sighupReadsTheAllowlistAgain() throws {
        let me = getuid()
        let d = try DaemonUnderTest(extraConfig: "client_allowlist = \(me)")
        defer { d.stop() }
        let before = try d.connect()
        before.postfixHandshake()

        // A list naming nobody is refused with file:line; the old list stays in force.
        try d.rewriteConfig { $0.replacingOccurrences(of: "client_allowlist = \(me)", with: "client_allowlist = \(me) nosuchuser-sg") }
        d.signal(SIGHUP)
        #expect(d.waitForLog("reload rejected"))
        let line = try line(of: "client_allowlist", in: d.configPath)
        #expect(d.log.contains("saslgated.conf:\(line): client_allowlist: no such user 'nosuchuser-sg'"), "\(d.log)")
        let admitted = try d.connect()
        #expect(admitted.readGreeting().last == "DONE")

        // A list without us: new connections are refused; the connection made earlier keeps working.
        try d.rewriteConfig { $0.replacingOccurrences(of: "client_allowlist = \(me) nosuchuser-sg", with: "client_allowlist = \(me + 1)") }
        d.signal(SIGHUP)
        #expect(d.waitForLog("reload done"))
        let refused = try d.connect()
        #expect(refused.isClosedByServer())
        #expect(d.waitForLog("connection refused: peer not in client_allowlist"))
        before.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(before.readLine() == "OK\t1\tuser=test@example.org")
    }
}
