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
        func send(_ messages: [ServerMessage]) {
            var out: [UInt8] = []
            for m in messages { m.encode(into: &out) }
            _ = out.withUnsafeBytes { Glibc.send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        let plain = ServerMessage.mech(name: "PLAIN", flags: ["plaintext"])
        let rest: [ServerMessage] = [.spid(1), .cuid(1), .cookie("00"), .done]
        switch behavior {
        case .silent:
            send([.version, plain])
            while let line = reader.next() { received.withLock { $0.append(String(decoding: line, as: UTF8.self)) } }
            return
        case .plainOnly:
            send([.version, plain] + rest)
        case .normal:
            send([.version, plain, .mech(name: "LOGIN", flags: ["plaintext"])] + rest)
        }
        var loginUser: String?
        func verdict(_ id: UInt32, _ u: String, _ p: String) {
            if u == user && p == password {
                send([.ok(id: id, user: u, fields: [])])
            } else {
                send([.fail(id: id, user: u, code: nil, reason: nil, fields: [("code", "authfail"), ("reason", "Password mismatch")])])
            }
        }
        func prompt(_ id: UInt32, _ text: String) {
            send([.cont(id: id, base64: DovecotBase64.encode(Array(text.utf8)))])
        }
        while let line = reader.next() {
            received.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
            // The client's lines, read by the daemon's own parser.
            guard let message = try? ClientMessageParser.parse(line) else { return }
            switch message {
            case .auth(let command) where command.mechanismKey == "PLAIN":
                guard case .bytes(let response) = command.initialResponse(clientMinor: 2) else {
                    send([.fail(id: command.id, user: nil, code: nil, reason: nil, fields: [])])
                    continue
                }
                let parts = response.split(separator: 0, omittingEmptySubsequences: false).map {
                    String(decoding: $0, as: UTF8.self)
                }
                verdict(command.id, parts.count > 1 ? parts[1] : "", parts.count > 2 ? parts[2] : "")
            case .auth(let command) where command.mechanismKey == "LOGIN":
                prompt(command.id, "Username:")
            case .auth(let command):
                send([.fail(id: command.id, user: nil, code: nil, reason: nil, fields: [])])
            case .cont(let id, let data):
                let value = String(decoding: DovecotBase64.decode(data) ?? [], as: UTF8.self)
                if let u = loginUser {
                    verdict(id, u, value)
                } else {
                    loginUser = value
                    prompt(id, "Password:")
                }
            case .version, .cpid, .cancel:
                continue
            }
        }
    }

    struct LineReader {
        let fd: Int32
        var buffer: [UInt8] = []

        init(fd: Int32) { self.fd = fd }

        /// The next line without its LF; nil at end of input.
        mutating func next() -> [UInt8]? {
            while true {
                if let nl = buffer.firstIndex(of: 0x0A) {
                    let line = Array(buffer[..<nl])
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
