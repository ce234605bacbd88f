import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Opens one connection to one host. A TCP connection is made here rather than by postgres-nio, which
/// has no socket options: it gets TCP keepalive (60 s idle, then 3 probes 10 s apart), so a connection
/// a firewall or NAT dropped silently while idle is found dead and replaced, not waited on by the next
/// lookup until its deadline. postgres-nio then does the rest (TLS, startup, authentication) on it,
/// within what is left of the connect timeout. A Unix socket connection is postgres-nio's own.
struct PgConnector: Sendable {
    static let keepaliveIdle: SocketOptionValue = 60
    static let keepaliveInterval: SocketOptionValue = 10
    static let keepaliveProbes: SocketOptionValue = 3

    let endpoint: PgConnectString.Endpoint
    /// The settings of every connection: for a Unix socket as it is, for TCP the template of the
    /// connection made on the established channel.
    let configuration: PostgresConnection.Configuration

    /// `onChannel` learns the TCP channel as soon as it is connected (for `connect()`'s cancellation).
    func connect(
        on loop: any EventLoop, id: Int, logger: Logger, onChannel: (@Sendable (any Channel) -> Void)? = nil
    ) -> EventLoopFuture<PostgresConnection> {
        guard case .tcp(let host, let port) = endpoint else {
            return PostgresConnection.connect(on: loop, configuration: configuration, id: id, logger: logger)
        }
        let base = configuration
        let timeout = base.options.connectTimeout
        let deadline = NIODeadline.now() + timeout
        return Self.bootstrap(on: loop, timeout: timeout)
            .connect(host: host, port: port)
            .flatMap { channel in
                onChannel?(channel)
                var c = PostgresConnection.Configuration(
                    establishedChannel: channel, tls: base.tls, username: base.username, password: base.password,
                    database: base.database)
                c.options = base.options
                // What postgres-nio would have sent as the TLS server name (and checked the certificate
                // against) had it connected by the host name itself.
                if c.options.tlsServerName == nil, !Self.isIPAddress(host) { c.options.tlsServerName = host }
                let left = deadline - .now()
                c.options.connectTimeout = left > .milliseconds(1) ? left : .milliseconds(1)
                return PostgresConnection.connect(on: loop, configuration: c, id: id, logger: logger)
                    .flatMapError { error in
                        channel.close(promise: nil)
                        // The time-out of the whole attempt is connect_timeout, not what was left of it.
                        if case .connectTimeout? = (error as? PSQLError)?.underlying as? ChannelError {
                            return loop.makeFailedFuture(ChannelError.connectTimeout(timeout))
                        }
                        return loop.makeFailedFuture(error)
                    }
            }
    }

    /// One connection for a probe: cancelling the task closes a connection under way (a shutdown does
    /// not wait for its TLS or authentication to end).
    func connect(on loop: any EventLoop, logger: Logger) async throws -> PostgresConnection {
        guard case .tcp = endpoint else {
            return try await PostgresConnection.connect(on: loop, configuration: configuration, id: 0, logger: logger)
        }
        let attempt = PendingChannel()
        return try await withTaskCancellationHandler {
            try await connect(on: loop, id: 0, logger: logger, onChannel: { attempt.connected($0) }).get()
        } onCancel: {
            attempt.cancel()
        }
    }

    private static func bootstrap(on loop: any EventLoop, timeout: TimeAmount) -> ClientBootstrap {
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
        #if os(Linux)
        let tcp = SocketOptionLevel(IPPROTO_TCP)
        return bootstrap
            .channelOption(ChannelOptions.socket(tcp, TCP_KEEPIDLE), value: keepaliveIdle)
            .channelOption(ChannelOptions.socket(tcp, TCP_KEEPINTVL), value: keepaliveInterval)
            .channelOption(ChannelOptions.socket(tcp, TCP_KEEPCNT), value: keepaliveProbes)
        #else
        return bootstrap
        #endif
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return host.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
    }
}

/// The channel of a connection attempt, closed when the attempt is cancelled (before or after it
/// connected).
private final class PendingChannel: Sendable {
    private let state = Mutex<(channel: (any Channel)?, cancelled: Bool)>((nil, false))

    func connected(_ channel: any Channel) {
        let cancelled = state.withLock { s in
            s.channel = channel
            return s.cancelled
        }
        if cancelled { channel.close(promise: nil) }
    }

    func cancel() {
        let channel = state.withLock { s in
            s.cancelled = true
            return s.channel
        }
        channel?.close(promise: nil)
    }
}

/// Whether a host's `password_query` can run in its batch form, shared by the host's pools so that a
/// refusal is logged once per host.
final class PgBatchSupport: Sendable {
    private let refused = Atomic<Bool>(false)

    var isRefused: Bool { refused.load(ordering: .relaxed) }

    /// True for the first caller only (who logs it).
    func refuse() -> Bool {
        !refused.exchange(true, ordering: .relaxed)
    }
}
