import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Reload, graceful stop, handshake timeout, sd_notify and socket activation of the built daemon.
@Suite(.serialized) struct LifecycleTests {
    @Test func sighupReloadsWithoutDroppingConnections() throws {
        let d = try DaemonUnderTest(mechanisms: "plain")
        defer { d.stop() }
        let old = try d.connect()
        old.postfixHandshake()
        try d.rewriteConfig { $0.replacingOccurrences(of: "mechanisms = plain", with: "mechanisms = plain login") }
        d.signal(SIGHUP)
        #expect(d.waitForLog("reload done"))
        let fresh = try d.connect()
        #expect(fresh.readGreeting().contains("MECH\tLOGIN\tplaintext"))
        // The connection opened before the reload still works, and now has the new mechanisms too.
        old.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(old.readLine() == "OK\t1\tuser=test@example.org")
        // A broken configuration is refused with the reason; the old one keeps serving.
        try d.rewriteConfig { $0 + "\nbogus_key = 1\n" }
        d.signal(SIGHUP)
        #expect(d.waitForLog("reload rejected"))
        #expect(d.log.contains("unknown parameter 'bogus_key'"))
        old.send("AUTH\t2\tLOGIN\tservice=smtp\tsecured\tresp=\(b64("test"))\n")
        #expect(old.readLine() == "CONT\t2\tUGFzc3dvcmQ6")
        #expect(d.process.isRunning)
    }

    @Test func reloadUnderLoadFailsNoRequest() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        let clients = 8
        let perClient = 150
        let wrong = Mutex(0)
        let done = Mutex(0)
        // The clients keep asking until all ten reloads were made (at least `perClient` requests each),
        // so the reloads always land while requests are in flight, however fast the daemon is.
        let reloadsFinished = Atomic<Bool>(false)
        let group = DispatchGroup()
        for n in 0..<clients {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                guard let c = try? d.connect() else {
                    wrong.withLock { $0 += 1 }
                    return
                }
                c.postfixHandshake()
                var i = 0
                while i < perClient || !reloadsFinished.load(ordering: .relaxed) {
                    i += 1
                    let good = (i + n) % 4 != 0
                    c.send("AUTH\t\(i)\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.\(n + 1)\tno-penalty\tresp=\(b64("\0test\0\(good ? "testpass" : "nope")"))\n")
                    let expected = good ? "OK\t\(i)\tuser=test@example.org" : "FAIL\t\(i)\tuser=test@example.org"
                    if c.readLine(timeout: 10) != expected { wrong.withLock { $0 += 1 } }
                    done.withLock { $0 += 1 }
                }
            }
        }
        // Reload ten times while the clients run.
        for _ in 0..<10 {
            d.signal(SIGHUP)
            usleep(100_000)
        }
        reloadsFinished.store(true, ordering: .relaxed)
        group.wait()
        #expect(wrong.withLock { $0 } == 0, "requests answered wrongly or not at all during reloads")
        #expect(done.withLock { $0 } >= clients * perClient)
        #expect(d.waitForLog("reload done"))
        #expect(!d.log.contains("reload rejected"))
    }

    @Test func sigtermAnswersInFlightRequestsThenExitsZero() throws {
        let d = try DaemonUnderTest(extraConfig: "failure_delay = 1500ms")
        defer { d.stop() }
        let c = try d.connect()
        c.postfixHandshake()
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0wrong"))\n")
        // The failure is logged when it is decided; its answer waits out the delay.
        #expect(d.waitForLog("auth failed"))
        d.signal(SIGTERM)
        #expect(c.readLine(timeout: 5) == "FAIL\t1\tuser=test@example.org")  // still answered
        #expect(waitForExit(d.process, limit: 15))
        #expect(d.process.terminationStatus == 0)
        #expect((try? d.connect()) == nil)  // no longer accepting
    }

    @Test func clientsThatNeverHandshakeAreDropped() throws {
        let d = try DaemonUnderTest(extraConfig: "handshake_timeout = 1s")
        defer { d.stop() }
        let silent = try d.connect()
        let halfway = try d.connect()
        halfway.send("VERSION\t1\t0\n")
        let good = try d.connect()
        good.postfixHandshake()
        #expect(silent.isClosedByServer(timeout: 4))
        #expect(halfway.isClosedByServer(timeout: 4))
        // A client that completed the handshake stays connected while idle.
        #expect(good.readLine(timeout: 2) == nil)
        good.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(good.readLine() == "OK\t1\tuser=test@example.org")
    }

    @Test func notifiesSystemd() throws {
        let dir = NSTemporaryDirectory() + "sgnotify-" + UUID().uuidString.prefix(6)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/notify"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(path.utf8)
            raw.copyBytes(from: b)
            raw[b.count] = 0
        }
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        func next() -> String? {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 5000) > 0 else { return nil }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, buf.count, 0)
            return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
        }
        let d = try DaemonUnderTest(environment: ["NOTIFY_SOCKET": path])
        defer { d.stop() }
        #expect(next()?.hasPrefix("READY=1\nSTATUS=serving; mechanisms PLAIN LOGIN") == true)
        d.signal(SIGHUP)
        #expect(next()?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true)
        #expect(next()?.hasPrefix("READY=1") == true)
        d.signal(SIGTERM)
        #expect(next() == "STOPPING=1")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func adoptsASocketPassedBySystemd() throws {
        // systemd-socket-activate binds the path and passes it as fd 3 (LISTEN_FDS=1), like saslgated.socket.
        let dir = NSTemporaryDirectory() + "sgsa-" + UUID().uuidString.prefix(6)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let activated = dir + "/activated"
        let d = try DaemonUnderTest(launcher: ["/usr/bin/systemd-socket-activate", "-l", activated])
        defer { d.stop() }
        let c = try AuthClient(path: activated, retryFor: 5)  // the first connection starts the daemon
        c.postfixHandshake()
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test\0testpass"))\n")
        #expect(c.readLine(timeout: 10) == "OK\t1\tuser=test@example.org")
        #expect(d.waitForLog("socket(s) passed by systemd"))
    }
}
