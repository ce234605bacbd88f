import Logging
import NIOCore
import NIOPosix
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

/// Opens one connection to one host. A TCP connection is made here rather than by postgres-nio, which
/// has no socket options: it gets TCP keepalive (60 s idle, then 3 probes 10 s apart), so a connection
/// a firewall or NAT dropped silently while idle is found dead and replaced, not waited on by the next
/// lookup until its deadline. postgres-nio then does the rest (TLS, startup, authentication) on it,
/// within what is left of the connect timeout. A Unix socket connection is postgres-nio's own.
struct PgConnector: Sendable {
    static let keepaliveIdle = 60
    static let keepaliveInterval = 10
    static let keepaliveProbes = 3

    let endpoint: PgConnectString.Endpoint
    /// The settings of every connection: for a Unix socket as it is, for TCP the template of the
    /// connection made on the established channel.
    let configuration: PostgresConnection.Configuration

    func connect(on loop: any EventLoop, id: Int, logger: Logger) -> EventLoopFuture<PostgresConnection> {
        guard case .tcp(let host, let port) = endpoint else {
            return PostgresConnection.connect(on: loop, configuration: configuration, id: id, logger: logger)
        }
        let base = configuration
        let timeout = base.options.connectTimeout
        let deadline = NIODeadline.now() + timeout
        let tcp = SocketOptionLevel(IPPROTO_TCP)
        return ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelOption(ChannelOptions.socket(tcp, TCP_KEEPIDLE), value: Self.keepaliveIdle)
            .channelOption(ChannelOptions.socket(tcp, TCP_KEEPINTVL), value: Self.keepaliveInterval)
            .channelOption(ChannelOptions.socket(tcp, TCP_KEEPCNT), value: Self.keepaliveProbes)
            .connect(host: host, port: port)
            .flatMap { channel in
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
                        return loop.makeFailedFuture(error)
                    }
            }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return host.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
    }
}
