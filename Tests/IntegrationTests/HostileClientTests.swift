import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Clients that flood requests and never read the replies: memory stays bounded, and once they are gone
/// a new client is served at once.
@Suite("hostile clients", .serialized)
struct HostileClientTests {
    /// Resident memory of a process in bytes (VmRSS).
    static func rss(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kb * 1024
    }

    /// Writes `lines` (cycled, with fresh ids) without ever reading, until the socket stays full for
    /// `stall` seconds or `limit` bytes went out. Returns the bytes written.
    static func flood(_ fd: Int32, firstID: Int, limit: Int, stall: Double) -> Int {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var sent = 0
        var id = firstID
        var pending: [UInt8] = []
        var blockedSince: Date?
        while sent < limit {
            if pending.isEmpty {
                var chunk = ""
                for _ in 0..<64 {
                    // Half refused at once (cleartext without TLS: a FAIL each), half left waiting for a
                    // response (a CONT each, the request stays in the table).
                    chunk += id % 2 == 0
                        ? "AUTH\t\(id)\tPLAIN\tservice=smtp\trip=192.0.2.9\n"
                        : "AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.9\n"
                    id += 1
                }
                pending = Array(chunk.utf8)
            }
            let n = pending.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                pending.removeFirst(n)
                blockedSince = nil
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                if let since = blockedSince {
                    if Date().timeIntervalSince(since) > stall { break }
                } else {
                    blockedSince = Date()
                }
                usleep(2_000)
            } else {
                break
            }
        }
        return sent
    }

    @Test func floodingClientsThatNeverReadStayBounded() throws {
        let d = try DaemonUnderTest(extraConfig: "max_connections = 1000")
        defer { d.stop() }
        let pid = d.process.processIdentifier
        let count = 200
        var clients: [AuthClient] = []
        for _ in 0..<count {
            let c = try d.connect()
            c.postfixHandshake()
            clients.append(c)
        }
        usleep(200_000)
        let before = Self.rss(pid)
        // Flood from 4 threads at once, each client up to 4 MiB (far more than any buffer may hold).
        let total = Mutex(0)
        let fds = clients.map(\.fd)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for (i, fd) in fds.enumerated() where i % 4 == t {
                let n = Self.flood(fd, firstID: 1, limit: 4 << 20, stall: 0.15)
                total.withLock { $0 += n }
            }
        }
        usleep(500_000)
        let peak = Self.rss(pid)
        let growth = peak - before
        let sent = total.withLock { $0 }
        print("hostile: \(count) flooding clients wrote \(sent / 1024) KiB; daemon RSS \(before / 1024) KiB -> \(peak / 1024) KiB (+\(growth / 1024) KiB, \(growth / count) bytes per client)")
        #expect(growth < 48 << 20, "200 flooding clients grew RSS by \(growth / 1024) KiB")
        // The daemon stopped reading them: nowhere near 200 x 4 MiB was accepted.
        #expect(sent < count * (1 << 20), "the daemon kept reading clients that do not read: \(sent) bytes")

        // They leave; a new client is greeted and answered at once (a second when the machine is idle;
        // the bound leaves a loaded test machine slack, while working through the flooders' backlog
        // would take far longer).
        clients.removeAll()
        let start = Date()
        let c = try d.connect()
        c.send("VERSION\t1\t0\nCPID\t77\n")
        let greeting = c.readGreeting()
        #expect(greeting.last == "DONE")
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test@example.org\0testpass"))\n")
        let answer = c.readLine(timeout: 5) ?? "(none)"
        let elapsed = Date().timeIntervalSince(start)
        print("hostile: after they left, a new client was greeted and answered in \(Int(elapsed * 1000)) ms")
        #expect(answer.hasPrefix("OK\t1\t"), "\(answer)")
        #expect(elapsed < 5.0, "a new client waited \(elapsed) s")
        #expect(d.process.isRunning)
    }

    /// A client that floods, never reads and leaves: what it had queued in the socket is not worked
    /// through (the old decoder kept answering a departed client's backlog while others waited).
    @Test func aDepartedClientsBacklogIsNotWorkedThrough() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        var c: AuthClient? = try d.connect()
        c!.postfixHandshake()
        let fd = c!.fd
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        // Only requests refused at once: each would be one FAIL and one log line if it were decoded.
        // 64 lines a write, so the kernel queues many of them.
        let line = "AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.9\n"
        let batch = Array(String(repeating: line, count: 64).utf8)
        var sent = 0
        var stalled = 0
        while stalled < 100 {
            let n = batch.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n == batch.count {
                sent += 64
                stalled = 0
            } else {
                if n > 0 { break }  // a partial batch: the socket is full
                stalled += 1
                usleep(2_000)
            }
        }
        func decoded() -> Int { d.log.components(separatedBy: "auth failed result=failed").count - 1 }
        // Until the daemon has decoded all it will while the client stays (the same count three times
        // 200 ms apart, at most 10 s): a daemon short of CPU is still decoding, not reading a departed
        // client's backlog.
        var beforeLeaving = decoded()
        var same = 0
        for _ in 0..<50 where same < 3 {
            usleep(200_000)
            let now = decoded()
            same = now == beforeLeaving ? same + 1 : 0
            beforeLeaving = now
        }
        c = nil  // closes the socket with the backlog unread on both sides
        usleep(1_000_000)
        let afterLeaving = decoded()
        print("hostile: a client queued \(sent) requests, \(beforeLeaving) decoded while it stayed, \(afterLeaving - beforeLeaving) after it left")
        #expect(sent - beforeLeaving > 1000, "the backlog should be large for this test to mean anything")
        #expect(afterLeaving - beforeLeaving < 10, "the backlog of a departed client was worked through")
        #expect(try d.connect().readGreeting().last == "DONE")
    }
}
