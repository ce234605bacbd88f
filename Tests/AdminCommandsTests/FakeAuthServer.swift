import AuthProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A scripted Dovecot auth server on a Unix socket, serving one connection on its own thread.
/// It knows one user and password, and records every line it received.
final class FakeAuthServer: Sendable {
    enum Behavior: Sendable {
        /// Normal greeting, then verify.
        case normal
        /// Never finishes the greeting (no DONE).
        case silent
        /// Offers only PLAIN.
        case plainOnly
    }

    let path: String
    private let listener: Int32
    private let received = Mutex<[String]>([])
    private let finished = Mutex(false)

    var lines: [String] { received.withLock { $0 } }

    init(path: String, user: String, password: String, behavior: Behavior = .normal) {
        self.path = path
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        precondition(rc == 0, "bind failed")
        listen(listener, 4)
        let fd = listener
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Job { self.serve(fd: fd, user: user, password: password, behavior: behavior) })
            .toOpaque()
        pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, box)
        pthread_detach(thread)
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }

    private final class Job {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private func serve(fd: Int32, user: String, password: String, behavior: Behavior) {
        let conn = accept(fd, nil, nil)
        guard conn >= 0 else { return }
        defer { close(conn) }
        var reader = LineReader(fd: conn)
        func send(_ s: String) {
            _ = Array(s.utf8).withUnsafeBytes { Glibc.send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        switch behavior {
        case .silent:
            send("VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n")
            while let line = reader.next() { received.withLock { $0.append(line) } }
            return
        case .plainOnly:
            send("VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n")
        case .normal:
            send("VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n")
        }
        var loginUser: String?
        while let line = reader.next() {
            received.withLock { $0.append(line) }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            func verdict(_ u: String, _ p: String) {
                if u == user && p == password {
                    send("OK\t1\tuser=\(u)\n")
                } else {
                    send("FAIL\t1\tuser=\(u)\tcode=authfail\treason=Password mismatch\n")
                }
            }
            if fields.first == "AUTH" {
                if fields[2] == "PLAIN", let resp = fields.first(where: { $0.hasPrefix("resp=") }) {
                    let bytes = DovecotBase64.decode(String(resp.dropFirst(5))) ?? []
                    let parts = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
                        String(decoding: $0, as: UTF8.self)
                    }
                    verdict(parts.count > 1 ? parts[1] : "", parts.count > 2 ? parts[2] : "")
                } else if fields[2] == "LOGIN" {
                    send("CONT\t1\t\(DovecotBase64.encode(Array("Username:".utf8)))\n")
                } else {
                    send("FAIL\t1\n")
                }
            } else if fields.first == "CONT" {
                let value = String(decoding: DovecotBase64.decode(fields[2]) ?? [], as: UTF8.self)
                if let u = loginUser {
                    verdict(u, value)
                } else {
                    loginUser = value
                    send("CONT\t1\t\(DovecotBase64.encode(Array("Password:".utf8)))\n")
                }
            }
        }
    }

    struct LineReader {
        let fd: Int32
        var buffer: [UInt8] = []

        init(fd: Int32) { self.fd = fd }

        mutating func next() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    return line
                }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return nil }
                buffer += chunk[..<n]
            }
        }
    }
}
