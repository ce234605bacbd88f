import AuthConfig
import AuthEngine
import AuthProtocol
import InMemoryLogging
import Logging
import NIOCore
import NIOEmbedded
import Passdb
import PassdbRegistry

@testable import AuthServer

#if canImport(Glibc)
import Glibc
#endif

/// A user table on disk with one `{PLAIN}` user, and the service a daemon would build over it. Every
/// answer is given synchronously on the event loop: `{PLAIN}` entries are checked in place, failures are
/// not delayed, and the table is not checked for changes during a test.
enum TestService {
    static let user = "alice@example.org"
    static let password = "s3cret"

    static func make(logger: Logger) throws -> AuthService {
        var template = Array("/tmp/saslgate-server.XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        let path = "\(directory)/users"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = Array("\(user):{PLAIN}\(password)\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)

        let settings = try Settings.parse(
            text: """
                passdbs = passwd-file:\(path)
                mechanisms = plain login
                default_realm = example.org
                failure_delay = 0
                """,
            file: "\(directory)/saslgated.conf", passdbDrivers: PassdbRegistry.catalog)
        let passdb = try PasswdFilePassdb(
            path: path, defaultRealm: settings.defaultRealm, executor: InlineExecutor(), logger: logger,
            checkInterval: .seconds(3600))
        // The table is in memory now and is not looked at again within a test.
        unlink(path)
        rmdir(directory)
        return try AuthService(settings: settings, passdbs: [passdb], hostname: "test.example", logger: logger)
    }
}

/// One client connection: a `ConnectionHandler` on an `EmbeddedChannel`, driven by a test as a client
/// would drive the socket. Everything runs on the test's thread; time moves only when the test says so.
final class TestConnection {
    static let pid = 4242
    static let cuid: UInt64 = 7
    /// The cookie's random bytes are all this one, so the greeting is known in advance.
    static let cookieByte: UInt8 = 0xab
    static var cookie: String { String(repeating: String(cookieByte, radix: 16), count: 16) }

    let channel: EmbeddedChannel
    let logs = InMemoryLogHandler()
    /// Seconds a client has for VERSION and CPID.
    let handshakeTimeout: Double
    private(set) var closedByHandler = 0

    init(allowlist: PeerAllowlist = PeerAllowlist()) throws {
        let logger = Logger(label: "test") { [logs] _ in logs }
        let service = try TestService.make(logger: logger)
        handshakeTimeout = Settings().handshakeTimeout  // the test configuration keeps the default
        channel = EmbeddedChannel()
        let handler = ConnectionHandler(
            identity: ServerIdentity(pid: TestConnection.pid) { [UInt8](repeating: TestConnection.cookieByte, count: $0) },
            logger: logger, counters: ServerCounters(), handshakeTimeout: handshakeTimeout,
            allowlist: allowlist, onClose: { [unowned self] in self.closedByHandler += 1 },
            makeSession: { io, peer in
                AuthClientSession(io: io, cuid: TestConnection.cuid, peer: peer, serviceProvider: { service })
            })
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// The client connects: the handler sees the channel become active.
    func connect() throws {
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/run/saslgate/test")).wait()
    }

    /// Closes the channel if the handler has not, and runs what is left on the event loop.
    func finish() {
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    /// One read of the server's socket carrying `text`.
    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    /// Each write the handler made since the last call, in order.
    func writes() throws -> [String] {
        var out: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out.append(String(buffer: buffer))
        }
        return out
    }

    /// The lines the handler wrote since the last call.
    func lines() throws -> [String] {
        try writes().joined().split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    var isOpen: Bool { channel.isActive }

    /// The client stops reading: its socket buffer fills and NIO reports the channel unwritable.
    func clientStopsReading() {
        channel.isWritable = false
        channel.pipeline.syncOperations.fireChannelWritabilityChanged()
    }

    /// The client reads what it was sent: the channel is writable again.
    func clientCatchesUp() {
        channel.isWritable = true
        channel.pipeline.syncOperations.fireChannelWritabilityChanged()
    }

    /// Whether the handler lets NIO read the socket (the last `autoRead` it set; NIO's default is on).
    var readsSocket: Bool {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool ?? true
    }

    /// The warnings the handler logged (why it closed a connection).
    var warnings: [String] {
        logs.entries.filter { $0.level == .warning }.map { "\($0.message)" }
    }
}

/// Client lines as Postfix writes them.
enum Client {
    static let handshake = "VERSION\t1\t0\nCPID\t1234\n"

    /// `AUTH` with PLAIN and an initial response, on a TLS session (`secured`); `padding` goes into a
    /// parameter the server ignores (before `resp=`, which must come last).
    static func authPlain(_ id: Int, password: String = TestService.password, padding: Int = 0) -> String {
        let response = [0] + Array(TestService.user.utf8) + [0] + Array(password.utf8)
        let pad = padding > 0 ? "\tx-pad=" + String(repeating: "x", count: padding) : ""
        return "AUTH\t\(id)\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=192.0.2.2\tsecured\(pad)\tresp=\(DovecotBase64.encode(response))\n"
    }

    /// The same request padded to exactly `length` bytes, LF included.
    static func authPlain(_ id: Int, length: Int) -> String {
        let padding = length - authPlain(id).utf8.count - "\tx-pad=".utf8.count
        precondition(padding > 0, "a line of \(length) bytes cannot hold the request")
        return authPlain(id, padding: padding)
    }

    static func ok(_ id: Int) -> String { "OK\t\(id)\tuser=\(TestService.user)" }
    static func fail(_ id: Int) -> String { "FAIL\t\(id)\tuser=\(TestService.user)" }
}
