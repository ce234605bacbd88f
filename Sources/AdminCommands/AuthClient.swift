public import AuthCore
import AuthProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One authentication against a running daemon over the Dovecot auth-client protocol, like
/// `doveadm auth test`, with plain blocking sockets (a Unix socket path, or `inet:HOST:PORT` for a plain
/// TCP endpoint) and one overall deadline.
public struct AuthTestRequest: Sendable {
    public enum Mechanism: String, Sendable, CaseIterable {
        case plain = "PLAIN"
        case login = "LOGIN"
    }

    /// A Unix socket path, or `inet:HOST:PORT`.
    public var socketPath: String
    public var mechanism: Mechanism
    public var user: String
    public var service: String
    public var remoteIP: String?
    public var secured: Bool
    /// Send `debug`: saslgated then names the passdb that answered (`passdb=`) in its reply.
    public var debug: Bool = false
    /// Whole exchange, from connect to the final reply.
    public var timeout: Duration

    public init(
        socketPath: String, mechanism: Mechanism = .plain, user: String, service: String = "smtp",
        remoteIP: String? = nil,
        secured: Bool = false, timeout: Duration = .seconds(15)
    ) {
        self.socketPath = socketPath
        self.mechanism = mechanism
        self.user = user
        self.service = service
        self.remoteIP = remoteIP
        self.secured = secured
        self.timeout = timeout
    }
}

/// The server's verdict.
public enum AuthTestOutcome: Sendable, Equatable {
    /// `OK`: `user` is the `user=` the server returned (or the name tried).
    case succeeded(user: String)
    /// `FAIL` with its `user=`, `code=` and `reason=` when present.
    case failed(user: String, code: String?, reason: String?)

    /// The one line `saslgate auth test` prints (values sanitized for a terminal).
    public var summary: String {
        switch self {
        case .succeeded(let user):
            return "auth succeeded: user=\(sanitizeForLog(user, limit: 256))"
        case .failed(let user, let code, let reason):
            var line = "auth failed: user=\(sanitizeForLog(user, limit: 256))"
            if let code { line += " code=\(sanitizeForLog(code))" }
            if let reason { line += " reason=\(sanitizeForLog(reason, limit: 256))" }
            return line
        }
    }
}

/// Runs the exchange. Errors are `CLIError.failure` (exit 2) with one line saying what went wrong.
/// Nothing derived from the password is ever put into an error.
public enum AuthClient {
    /// Longest line accepted from the server (Dovecot's limit is 16 KiB).
    static let maxLineLength = 65536
    static let requestID: UInt32 = 1

    public static func run(_ request: AuthTestRequest, password: Secret) throws(CLIError) -> AuthTestOutcome {
        try runWithFields(request, password: password).outcome
    }

    /// The verdict and every field of the final reply (e.g. `passdb=` when `debug` was sent).
    public static func runWithFields(_ request: AuthTestRequest, password: Secret) throws(CLIError)
        -> (outcome: AuthTestOutcome, fields: [String: String])
    {
        guard !request.user.utf8.contains(0) else { throw .failure("the user name contains a NUL byte") }
        guard !password.containsNUL else {
            throw .failure("the password contains a NUL byte, which PLAIN and LOGIN cannot carry")
        }
        let deadline = ContinuousClock.now + request.timeout
        let connection = try Connection(path: request.socketPath, deadline: deadline, timeout: request.timeout)
        defer { connection.close() }

        // Handshake: our VERSION and CPID first, then the server's greeting up to DONE.
        try connection.sendHandshake(minor: ProtocolLimits.minorVersion)
        var greeting = ServerGreeting()
        while !greeting.isComplete {
            let line = try connection.readServerLine()
            if case .version(let major, _) = line, major != ProtocolLimits.majorVersion {
                throw .failure("the server speaks auth protocol version \(major), not 1")
            }
            greeting.add(line)
        }
        let mechanisms = greeting.mechanismNames
        guard mechanisms.contains(request.mechanism.rawValue) else {
            throw .failure(
                "the server does not offer \(request.mechanism.rawValue) (it offers: \(mechanisms.map { sanitizeForLog($0) }.joined(separator: " ")))"
            )
        }

        // AUTH, with the PLAIN response right away; LOGIN waits for the server's prompts.
        var parameters = [AuthParameter("service", request.service)]
        if let rip = request.remoteIP { parameters.append(AuthParameter("rip", rip)) }
        if request.secured { parameters.append(AuthParameter("secured")) }
        if request.debug { parameters.append(AuthParameter("debug")) }
        var auth: [UInt8] = []
        if request.mechanism == .plain {
            var response = plainResponse(user: request.user, password: password)
            try connection.sendSecret(&response) { response, line in
                ClientLineEncoder.auth(
                    id: requestID, mechanism: request.mechanism.rawValue, parameters: parameters,
                    initialResponse: response, into: &line)
            }
        } else {
            ClientLineEncoder.auth(
                id: requestID, mechanism: request.mechanism.rawValue, parameters: parameters, initialResponse: nil,
                into: &auth)
            try connection.send(auth)
        }

        var continuations = 0
        while true {
            let reply = try connection.readServerLine()
            switch reply {
            case .ok(let id, let fields), .fail(let id, let fields):
                try expectRequestID(id)
                let user = fields.value("user") ?? request.user
                let outcome: AuthTestOutcome =
                    if case .ok = reply { .succeeded(user: user) } else {
                        .failed(user: user, code: fields.value("code"), reason: fields.value("reason"))
                    }
                return (outcome, dictionary(fields))
            case .cont(let id, let base64):
                try expectRequestID(id)
                continuations += 1
                guard continuations <= 3 else { throw .failure("the server keeps sending CONT; giving up") }
                guard let challenge = DovecotBase64.decode(base64) else {
                    throw .failure("the server sent a CONT that is not valid base64")
                }
                var response: [UInt8]
                switch request.mechanism {
                case .plain:
                    response = plainResponse(user: request.user, password: password)
                case .login:
                    // LOGIN: "Username:" then "Password:"; go by the text, else by the order.
                    let prompt = String(decoding: challenge, as: UTF8.self).lowercased()
                    let wantsUser = prompt.hasPrefix("user") || (!prompt.hasPrefix("pass") && continuations == 1)
                    response = wantsUser ? Array(request.user.utf8) : password.bytes
                }
                try connection.sendSecret(&response) { response, line in
                    ClientLineEncoder.cont(id: requestID, response: response, into: &line)
                }
            default:
                throw .failure("unexpected reply from the server: \(sanitizeForLog(reply.command))")
            }
        }
    }

    private static func expectRequestID(_ id: UInt32) throws(CLIError) {
        guard id == requestID else { throw .failure("the server answered for request id \(id), not \(requestID)") }
    }

    /// `\0user\0password` (no authorization identity).
    static func plainResponse(user: String, password: Secret) -> [UInt8] {
        [0] + Array(user.utf8) + [0] + password.bytes
    }

    /// The reply's fields by name (a bare flag maps to ""); the first of a repeated name wins.
    static func dictionary(_ fields: [ServerField]) -> [String: String] {
        var out: [String: String] = [:]
        for field in fields where out[field.name] == nil { out[field.name] = field.value ?? "" }
        return out
    }
}

/// A connected stream socket (a Unix socket path, or `inet:HOST:PORT`) with line I/O under a deadline.
final class Connection {
    private var fd: Int32
    private let deadline: ContinuousClock.Instant
    private let timeout: Duration
    private var buffer: [UInt8] = []
    private let path: String

    init(path: String, deadline: ContinuousClock.Instant, timeout: Duration) throws(CLIError) {
        self.path = path
        self.deadline = deadline
        self.timeout = timeout
        fd = try ClientSocket.connect(path, deadline: deadline)
    }

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    func send(_ text: String) throws(CLIError) {
        try send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws(CLIError) {
        try sendBytes(bytes)
    }

    /// `VERSION\t1\t<minor>` and `CPID`, as a client opens (Postfix announces minor 0, doveadm 2).
    func sendHandshake(minor: UInt32) throws(CLIError) {
        var hello: [UInt8] = []
        ClientLineEncoder.version(minor: minor, into: &hello)
        ClientLineEncoder.cpid(UInt32(getpid()), into: &hello)
        try sendBytes(hello)
    }

    /// Sends the line `encode` writes for `response`, a password or password-equivalent; both the
    /// response and the line are wiped afterwards.
    func sendSecret(
        _ response: inout [UInt8], encode: (UnsafeBufferPointer<UInt8>, inout [UInt8]) -> Void
    ) throws(CLIError) {
        var line: [UInt8] = []
        // Room for the whole line up front, so that no copy of the secret is left behind by growth.
        line.reserveCapacity(512 + response.count * 2)
        response.withUnsafeBufferPointer { encode($0, &line) }
        defer {
            response.wipe()
            line.wipe()
        }
        try sendBytes(line)
    }

    private func sendBytes(_ bytes: [UInt8]) throws(CLIError) {
        var offset = 0
        while offset < bytes.count {
            try waitFor(Int16(POLLOUT))
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .failure("\(path): write failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Everything the server sends until it closes (at most `limit` bytes).
    func readToEnd(limit: Int = 16 << 20) throws(CLIError) -> [UInt8] {
        var out = buffer
        buffer.removeAll()
        while true {
            try waitFor(Int16(POLLIN))
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .failure("\(path): read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { return out }
            out += chunk[..<n]
            guard out.count <= limit else { throw .failure("\(path): answer larger than \(limit) bytes") }
        }
    }

    /// The next line, parsed; a malformed one is an error that shows an excerpt.
    func readServerLine() throws(CLIError) -> ServerLine {
        let raw = try readLine()
        do throws(MalformedServerLine) {
            return try ServerLine.parse(raw)
        } catch {
            throw .failure("\(error)")
        }
    }

    /// The next line split at TABs, each field tab-unescaped.
    func readFields() throws(CLIError) -> [String] {
        let line = try readLine()
        return line.split(separator: 0x09, omittingEmptySubsequences: false).map {
            String(decoding: TabEscape.unescape($0), as: UTF8.self)
        }
    }

    private func readLine() throws(CLIError) -> [UInt8] {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                if line.last == 0x0D { line.removeLast() }
                return line
            }
            guard buffer.count <= AuthClient.maxLineLength else {
                throw .failure("the server sent a line longer than 64 KiB")
            }
            try waitFor(Int16(POLLIN))
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .failure("\(path): read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw .failure("the server closed the connection before answering") }
            buffer += chunk[..<n]
        }
    }

    private func waitFor(_ events: Int16) throws(CLIError) {
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { throw .failure("no answer from \(path) within \(timeout); giving up") }
            let ms = Int32(
                clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
                    + 1)
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, ms)
            if rc < 0 {
                if errno == EINTR { continue }
                throw .failure("poll failed: \(String(cString: strerror(errno)))")
            }
            if rc > 0 { return }
        }
    }
}
