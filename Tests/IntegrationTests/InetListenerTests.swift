import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TCP endpoints (`listen = PATH inet:HOST:PORT`) against the real daemon: authentication over the
/// Unix socket and TCP side by side, IPv6, `inet_clients` closing a connection before any byte, and the
/// peer address in the log.
@Suite("TCP listeners", .serialized)
struct InetListenerTests {
    static let plainAuth = "AUTH\t1\tPLAIN\tservice=smtp\tsecured\tlip=192.0.2.1\trip=192.0.2.7\tresp=\(b64("\0test\0testpass"))\n"

    @Test func unixSocketAndTCPServeTogether() throws {
        let port = try freePort()
        let d = try DaemonUnderTest(extraListen: "inet:127.0.0.1:\(port)")
        defer { d.stop() }
        #expect(d.waitForLog("listening address=127.0.0.1:\(port)"), "\(d.log)")

        let tcp = try AuthClient(inet: "127.0.0.1", port: port)
        tcp.postfixHandshake()
        tcp.send(Self.plainAuth)
        #expect(tcp.readLine() == "OK\t1\tuser=test@example.org")
        tcp.send("AUTH\t2\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.8\tresp=\(b64("\0test\0wrong"))\n")
        #expect(tcp.readLine()?.hasPrefix("FAIL\t2\tuser=test@example.org") == true)

        let unix = try d.connect()
        unix.postfixHandshake()
        unix.send(Self.plainAuth)
        #expect(unix.readLine() == "OK\t1\tuser=test@example.org")

        // Each TCP connection is logged with the peer's address, and so is each of its requests (rip
        // stays the SMTP client's address from the AUTH line); the Unix socket's lines have no peer=.
        #expect(d.waitForLog("client connected over TCP conn=1 peer=127.0.0.1:"), "\(d.log)")
        // The request lines are written at the end of their event-loop round.
        #expect(d.waitForLog("auth failed result=failed"))
        #expect(d.waitForLog("conn=2 cpid="))
        let lines = d.log.split(separator: "\n")
        let tcpOK = lines.first { $0.contains("auth ok") && $0.contains("conn=1 ") }
        #expect(tcpOK?.contains(/rip=192\.0\.2\.7 lip=192\.0\.2\.1 .* conn=1 cpid=\d+ id=1 peer=127\.0\.0\.1:\d+$/) == true, "\(tcpOK ?? "")")
        #expect(lines.contains { $0.contains("auth failed") && $0.contains("rip=192.0.2.8") && $0.contains(" peer=127.0.0.1:") })
        let unixOK = lines.first { $0.contains("auth ok") && $0.contains("conn=2 ") }
        #expect(unixOK != nil && unixOK?.contains("peer=") == false, "\(unixOK ?? "")")
    }

    /// `saslgate auth test --socket inet:HOST:PORT`, and the CLI's default endpoint when listen has
    /// only TCP endpoints.
    @Test func theCLITestsATCPEndpoint() throws {
        let port = try freePort()
        let d = try DaemonUnderTest(extraListen: "inet:127.0.0.1:\(port)")
        defer { d.stop() }
        let ok = try runBuilt("saslgate", ["auth", "test", "--socket", "inet:127.0.0.1:\(port)", "--secured", "--password-stdin", "test"], input: "testpass\n")
        #expect(ok.code == 0 && ok.out.contains("auth succeeded: user=test@example.org"), "\(ok.out)")
        let bad = try runBuilt("saslgate", ["auth", "test", "--socket", "inet:127.0.0.1:\(port)", "--secured", "--password-stdin", "test"], input: "nope\n")
        #expect(bad.code == 1 && bad.out.contains("auth failed"), "\(bad.out)")
        let spelled = try runBuilt("saslgate", ["auth", "test", "--socket", "inet:::1:\(port)", "--password-stdin", "test"], input: "x\n")
        #expect(spelled.code == 2 && spelled.out.contains("an IPv6 address needs brackets: inet:[::1]:\(port)"), "\(spelled.out)")
        let closed = try runBuilt("saslgate", ["auth", "test", "--socket", "inet:127.0.0.1:\(try freePort())", "--password-stdin", "test"], input: "x\n")
        #expect(closed.code == 2 && closed.out.contains("connection refused; is saslgated listening there?"), "\(closed.out)")

        // A configuration whose listen is TCP only: the CLI talks to that endpoint.
        try d.rewriteConfig { $0.replacingOccurrences(of: "listen = \(d.socketPath) inet:127.0.0.1:\(port)", with: "listen = inet:127.0.0.1:\(port)") }
        let viaConfig = try runBuilt("saslgate", ["auth", "test", "-c", d.configPath, "--secured", "--password-stdin", "test"], input: "testpass\n")
        #expect(viaConfig.code == 0 && viaConfig.out.contains("auth succeeded"), "\(viaConfig.out)")
    }

    @Test func ipv6Loopback() throws {
        guard canBind("::1") else {
            print("skipped: this machine has no ::1 to bind to")
            return
        }
        let port = try freePort(host: "::1")
        let d = try DaemonUnderTest(extraListen: "inet:[::1]:\(port)")
        defer { d.stop() }
        let c = try AuthClient(inet: "::1", port: port)
        c.postfixHandshake()
        c.send(Self.plainAuth)
        #expect(c.readLine() == "OK\t1\tuser=test@example.org")
        #expect(d.waitForLog("peer=[::1]:"), "\(d.log)")
    }

    /// A host outside `inet_clients` is closed at accept: not one byte (no greeting), and the log names
    /// its address. SIGHUP reads the list again for later connections.
    @Test func aPeerOutsideInetClientsGetsNothing() throws {
        let port = try freePort()
        let d = try DaemonUnderTest(extraConfig: "inet_clients = 10.0.0.0/8", extraListen: "inet:127.0.0.1:\(port)")
        defer { d.stop() }
        let refused = try AuthClient(inet: "127.0.0.1", port: port)
        let received = refused.readUntilClosed()
        #expect(received == [], "got \(received.map { String(decoding: $0, as: UTF8.self) } ?? "no close")")
        #expect(d.waitForLog("connection refused: 127.0.0.1:"), "\(d.log)")
        #expect(d.log.contains(/warning: connection refused: 127\.0\.0\.1:\d+ is not in inet_clients peer=127\.0\.0\.1:\d+/), "\(d.log)")
        #expect(!d.log.contains("client connected over TCP"))

        // client_allowlist does not apply to TCP, and a reload that admits 127.0.0.0/8 lets it in.
        try d.rewriteConfig { $0.replacingOccurrences(of: "inet_clients = 10.0.0.0/8", with: "inet_clients = 10.0.0.0/8 127.0.0.1\nclient_allowlist = 0") }
        d.signal(SIGHUP)
        #expect(d.waitForLog("reload done"))
        let admitted = try AuthClient(inet: "127.0.0.1", port: port)
        admitted.postfixHandshake()
        admitted.send(Self.plainAuth)
        #expect(admitted.readLine() == "OK\t1\tuser=test@example.org")
    }

    /// max_connections counts the Unix socket and TCP together.
    @Test func maxConnectionsSpansEveryListener() throws {
        let port = try freePort()
        let d = try DaemonUnderTest(extraConfig: "max_connections = 2", extraListen: "inet:127.0.0.1:\(port)")
        defer { d.stop() }
        let a = try d.connect()
        #expect(a.readGreeting().last == "DONE")
        let b = try AuthClient(inet: "127.0.0.1", port: port)
        #expect(b.readGreeting().last == "DONE")
        let third = try AuthClient(inet: "127.0.0.1", port: port)
        #expect(third.readUntilClosed() == [])
        #expect(d.waitForLog("connection refused: max_connections (2) reached"))
        let fourth = try d.connect()
        #expect(fourth.readUntilClosed() == [])
    }

    @Test func aBusyPortStopsTheStartAndNamesTheEndpoint() throws {
        let port = try freePort()
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr)
        let bound = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(holder, 1) == 0)
        #expect(throws: TestFailure.self) {
            _ = try DaemonUnderTest(extraListen: "inet:127.0.0.1:\(port)")
        }
        let dir = NSTemporaryDirectory() + "saslgate-busy-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "u@x:{PLAIN}p\n".write(toFile: dir + "/users", atomically: true, encoding: .utf8)
        chmod(dir + "/users", 0o640)
        try "listen = \(dir)/s inet:127.0.0.1:\(port)\nrun_user =\nlisten_user =\nlisten_group =\ncontrol_socket =\npasswd = x\n"
            .replacingOccurrences(of: "passwd = x", with: "passdbs = passwd-file:\(dir)/users")
            .write(toFile: dir + "/c.conf", atomically: true, encoding: .utf8)
        let r = try runBuilt("saslgated", ["-c", dir + "/c.conf"])
        #expect(r.code != 0)
        #expect(r.out.contains("cannot listen on inet:127.0.0.1:\(port): bind: Address already in use"), "\(r.out)")
        // The Unix socket bound before it is removed again.
        #expect(!FileManager.default.fileExists(atPath: dir + "/s"))
    }

    /// systemd passes a Unix socket and a TCP socket (LISTEN_FDS=2): both are served; the TCP one that
    /// listen does not name and the endpoint systemd did not pass are logged.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func systemdPassesTwoSockets() throws {
        let dir = NSTemporaryDirectory() + "sgsa2-" + UUID().uuidString.prefix(6)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let activated = dir + "/activated"
        let port = try freePort()
        let unpassed = try freePort()
        let d = try DaemonUnderTest(
            extraConfig: "listen = \(activated) inet:127.0.0.1:\(unpassed)",
            launcher: ["/usr/bin/systemd-socket-activate", "-l", activated, "-l", "127.0.0.1:\(port)"])
        defer { d.stop() }
        let unix = try AuthClient(path: activated, retryFor: 5)  // the first connection starts the daemon
        unix.postfixHandshake()
        unix.send(Self.plainAuth)
        #expect(unix.readLine(timeout: 10) == "OK\t1\tuser=test@example.org")
        let tcp = try AuthClient(inet: "127.0.0.1", port: port)
        tcp.postfixHandshake()
        tcp.send(Self.plainAuth)
        #expect(tcp.readLine() == "OK\t1\tuser=test@example.org")
        #expect(d.waitForLog("using the 2 socket(s) passed by systemd (fd 3,4)"), "\(d.log)")
        #expect(d.log.contains("systemd passed inet:127.0.0.1:\(port) (fd 4), which 'listen' does not name; serving it"), "\(d.log)")
        #expect(d.log.contains("'listen' names inet:127.0.0.1:\(unpassed) but systemd did not pass it"), "\(d.log)")
        #expect(!d.log.contains("systemd passed \(activated)"))
        #expect(d.log.contains("peer=127.0.0.1:"))
    }
}
