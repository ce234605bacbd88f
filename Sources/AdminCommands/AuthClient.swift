public import AuthCore
import AuthProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One authentication against a running daemon over the Dovecot auth-client protocol, like
/// `doveadm auth test`, with plain blocking AF_UNIX sockets and one overall deadline.
public struct AuthTestRequest: Sendable {
    public enum Mechanism: String, Sendable, CaseIterable {
        case plain = "PLAIN"
        case login = "LOGIN"
    }

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
    static let requestID = "1"

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
        try connection.send("VERSION\t1\t2\nCPID\t\(getpid())\n")
        var mechanisms: [String] = []
        while true {
            let fields = try connection.readFields()
            switch fields.first {
            case "VERSION":
                guard fields.count >= 2, fields[1] == "1" else {
                    throw .failure(
                        "the server speaks auth protocol version \(sanitizeForLog(fields.dropFirst().first ?? "?")), not 1"
                    )
                }
            case "MECH":
                if fields.count >= 2 { mechanisms.append(fields[1].uppercased()) }
            case "DONE":
                break
            default:
                continue  // SPID, CUID, COOKIE and anything newer
            }
            if fields.first == "DONE" { break }
        }
        guard mechanisms.contains(request.mechanism.rawValue) else {
            throw .failure(
                "the server does not offer \(request.mechanism.rawValue) (it offers: \(mechanisms.map { sanitizeForLog($0) }.joined(separator: " ")))"
            )
        }

        // AUTH, with the PLAIN response right away; LOGIN waits for the server's prompts.
        var auth = "AUTH\t\(requestID)\t\(request.mechanism.rawValue)\tservice=\(TabEscape.escape(request.service))"
        if let rip = request.remoteIP { auth += "\trip=\(TabEscape.escape(rip))" }
        if request.secured { auth += "\tsecured" }
        if request.debug { auth += "\tdebug" }
        if request.mechanism == .plain {
            try connection.sendSecretLine(
                prefix: auth + "\tresp=", response: plainResponse(user: request.user, password: password))
        } else {
            try connection.send(auth + "\n")
        }

        var continuations = 0
        while true {
            let fields = try connection.readFields()
            guard let command = fields.first, fields.count >= 2 else {
                throw .failure("unexpected reply from the server: \(sanitizeForLog(fields.joined(separator: " ")))")
            }
            guard fields[1] == requestID else {
                throw .failure("the server answered for request id \(sanitizeForLog(fields[1])), not \(requestID)")
            }
            let params = parameters(fields.dropFirst(2))
            switch command {
            case "OK":
                return (.succeeded(user: params["user"] ?? request.user), params)
            case "FAIL":
                return (.failed(user: params["user"] ?? request.user, code: params["code"], reason: params["reason"]), params)
            case "CONT":
                continuations += 1
                guard continuations <= 3 else { throw .failure("the server keeps sending CONT; giving up") }
                let challenge = fields.count >= 3 ? DovecotBase64.decode(fields[2]) : []
                guard let challenge else { throw .failure("the server sent a CONT that is not valid base64") }
                let response: [UInt8]
                switch request.mechanism {
                case .plain:
                    response = plainResponse(user: request.user, password: password)
                case .login:
                    // LOGIN: "Username:" then "Password:"; go by the text, else by the order.
                    let prompt = String(decoding: challenge, as: UTF8.self).lowercased()
                    let wantsUser = prompt.hasPrefix("user") || (!prompt.hasPrefix("pass") && continuations == 1)
                    response = wantsUser ? Array(request.user.utf8) : password.bytes
                }
                try connection.sendSecretLine(prefix: "CONT\t\(requestID)\t", response: response)
            default:
                throw .failure("unexpected reply from the server: \(sanitizeForLog(command))")
            }
        }
    }

    /// `\0user\0password` (no authorization identity).
    static func plainResponse(user: String, password: Secret) -> [UInt8] {
        [0] + Array(user.utf8) + [0] + password.bytes
    }

    /// `key=value` and bare flags of a reply, tab-unescaped.
    static func parameters<S: Sequence>(_ fields: S) -> [String: String] where S.Element == String {
        var out: [String: String] = [:]
        for field in fields {
            if let eq = field.firstIndex(of: "=") {
                out[String(field[..<eq])] = String(field[field.index(after: eq)...])
            } else {
                out[field] = ""
            }
        }
        return out
    }
}

/// A connected AF_UNIX stream socket with line I/O under a deadline.
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
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < capacity else {
            throw .failure("socket path \(path) is empty or longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
            raw[pathBytes.count] = 0
        }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failure("socket() failed: \(String(cString: strerror(errno)))") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            fd = -1
            switch e {
            case ENOENT:
                throw .failure("\(path) does not exist; is saslgated running? (give the socket with --socket PATH)")
            case ECONNREFUSED: throw .failure("\(path): connection refused; is saslgated running?")
            case EACCES: throw .failure("\(path): permission denied; run as a user that may use the auth socket")
            default: throw .failure("\(path): cannot connect: \(String(cString: strerror(e)))")
            }
        }
    }

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    func send(_ text: String) throws(CLIError) {
        try sendBytes(Array(text.utf8))
    }

    /// Sends `prefix` + base64(response) + LF; the bytes holding the secret are wiped afterwards.
    func sendSecretLine(prefix: String, response: [UInt8]) throws(CLIError) {
        var response = response
        var line = Array(prefix.utf8) + DovecotBase64.encodeBytes(response) + [0x0A]
        defer {
            Terminal.wipe(&response)
            Terminal.wipe(&line)
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
