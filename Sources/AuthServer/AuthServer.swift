#if canImport(Glibc)
import Glibc
#endif
import AuthConfig
import AuthEngine
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Counters shared by all connections.
final class ServerCounters: Sendable {
    let connections = Atomic<Int>(0)
    let nextCUID = Atomic<UInt64>(1)
}

/// Accepts client connections on the configured socket (or the one systemd passed) until graceful
/// shutdown.
final class AuthServer: Service, CustomStringConvertible {
    var description: String { "AuthServer" }
    let settings: Settings
    let box: ServiceBox
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    let counters = ServerCounters()
    let identity: ServerIdentity

    init(settings: Settings, box: ServiceBox, group: MultiThreadedEventLoopGroup, logger: Logger) {
        self.settings = settings
        self.box = box
        self.group = group
        self.logger = logger
        self.identity = ServerIdentity(pid: Int(getpid()), randomBytes: { n in
            var rng = SystemRandomNumberGenerator()
            return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
        })
    }

    func run() async throws {
        let channel = try await bind()
        logger.info("listening", metadata: [
            "socket": "\(settings.listen)",
            "mechanisms": "\(box.service.advertised.map(\.name).joined(separator: " "))",
        ])
        try? await gracefulShutdown()
        logger.info("shutting down: no new connections")
        try? await channel.close()
    }

    private func bind() async throws -> Channel {
        let box = self.box
        let identity = self.identity
        let counters = self.counters
        let logger = self.logger
        let maxConnections = settings.maxConnections
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 16 * 1024, high: 64 * 1024))
            .childChannelInitializer { channel in
                let open = counters.connections.wrappingAdd(1, ordering: .relaxed).newValue
                if open > maxConnections {
                    counters.connections.wrappingSubtract(1, ordering: .relaxed)
                    logger.warning("connection refused: max_connections (\(maxConnections)) reached")
                    return channel.close()
                }
                let cuid = counters.nextCUID.wrappingAdd(1, ordering: .relaxed).oldValue
                return channel.eventLoop.makeCompletedFuture {
                    let handler = ConnectionHandler(
                        identity: identity, logger: logger,
                        onClose: { counters.connections.wrappingSubtract(1, ordering: .relaxed) },
                        makeSession: { io in
                            AuthClientSession(io: io, cuid: cuid, peer: "", serviceProvider: { box.service })
                        })
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }

        let activated = SocketPath.systemdSockets()
        if let fd = activated.first {
            logger.info("using the socket passed by systemd (fd \(fd))")
            return try await bootstrap.withBoundSocket(fd).get()
        }
        let path = settings.listen
        try SocketPath.removeStale(path)
        // Create the socket file with the configured mode from the start: no window with a looser one.
        let oldMask = umask(mode_t(~settings.listenMode & 0o777))
        let channel: Channel
        do {
            channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
            umask(oldMask)
        } catch {
            umask(oldMask)
            throw SocketPath.Problem(description: "cannot listen on \(path): \(error)")
        }
        do {
            try SocketPath.applyOwnership(path, mode: settings.listenMode, user: settings.listenUser, group: settings.listenGroup)
        } catch {
            try? await channel.close()
            throw error
        }
        return channel
    }
}
