#if canImport(Glibc)
import Glibc
#endif
import AuthConfig
import AuthCore
import AuthEngine
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PassdbRegistry
import ServiceLifecycle
import Synchronization

/// Counters shared by all connections.
final class ServerCounters: Sendable {
    let connections = Atomic<Int>(0)
    let nextCUID = Atomic<UInt64>(1)
    /// Replies the server owes: requests being worked on plus failures waiting out the delay.
    let owedReplies = Atomic<Int>(0)
    /// Unfinished requests on all connections (including those waiting for the client).
    let pendingRequests = Atomic<Int>(0)
    /// What all connections hold in input, output and pending requests (see `ConnectionLimits`).
    let bufferedBytes = Atomic<Int>(0)
}

/// Accepts client connections on the configured endpoints (or the sockets systemd passed) until
/// graceful shutdown.
final class AuthServer: Service, CustomStringConvertible {
    var description: String { "AuthServer" }
    let settings: Settings
    let box: ServiceBox
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    let counters: ServerCounters
    let identity: ServerIdentity
    let control: ControlServer?
    /// Keeps a flood of refused TCP connections from flooding the log.
    let refusals = RefusalLogLimiter()
    /// The sockets, bound (and listening) by `Daemon.run` before the passdbs loaded; served from `run`.
    let listeners: [Listener]

    init(
        settings: Settings, box: ServiceBox, group: MultiThreadedEventLoopGroup, logger: Logger,
        counters: ServerCounters, control: ControlServer?, listeners: [Listener]
    ) {
        self.listeners = listeners
        self.settings = settings
        self.counters = counters
        self.control = control
        self.box = box
        self.group = group
        self.logger = logger
        let cookies = CookiePool()
        self.identity = ServerIdentity(pid: Int(getpid()), randomBytes: { n in cookies.bytes(n) })
    }

    func run() async throws {
        let channels = try await serve(listeners)
        let controlChannel = await control?.start(group: group)
        try dropPrivileges()
        let mechanisms = box.service.advertised.map(\.name).joined(separator: " ")
        for (endpoint, _) in channels {
            var metadata: Logger.Metadata = ["mechanisms": "\(mechanisms)"]
            switch endpoint {
            case .unix(let path): metadata["socket"] = "\(path)"
            case .inet(let host, let port):
                metadata["address"] = "\(ListenEndpoint.addressText(host: host, port: port))"
                metadata["tls"] = "\(settings.inetTLS ? "yes" : "no")"
            }
            logger.info("listening", metadata: metadata)
        }
        SystemdNotify.ready(status: "serving; mechanisms \(mechanisms)")
        try? await gracefulShutdown()
        SystemdNotify.stopping()
        logger.info("shutting down: no new connections; waiting for in-flight requests",
                    metadata: ["owed": "\(counters.owedReplies.load(ordering: .relaxed))"])
        for (_, channel) in channels { try? await channel.close() }
        try? await controlChannel?.close()
        // In-flight requests get their answers (bounded by shutdown_timeout); idle connections and
        // requests waiting for the client are simply closed with the event loops.
        let deadline = ContinuousClock.now + .milliseconds(Int(settings.shutdownTimeout * 1000))
        while counters.owedReplies.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let left = counters.owedReplies.load(ordering: .relaxed)
        if left > 0 {
            logger.warning("shutdown_timeout reached with \(left) requests unanswered")
        }
    }

    /// A run_user that does not exist stops the start before anything is bound: running on as root
    /// because of a missing account is never the safe choice.
    static func checkRunUser(_ settings: Settings) throws {
        guard let user = settings.runUser, getpwnam(user) == nil else { return }
        throw Privileges.Problem(description: "run_user '\(user)' does not exist; create it (useradd --system --no-create-home --shell /usr/sbin/nologin \(user)) or set 'run_user =' (empty) to keep running as the user who starts saslgated")
    }

    /// Runs as `run_user` from here on, also in the groups the passdbs need (`PassdbRegistry`) that
    /// exist on this system.
    private func dropPrivileges() throws {
        guard let user = settings.runUser else {
            if geteuid() == 0 { logger.notice("run_user is empty: running as root") }
            return
        }
        let extra = PassdbRegistry.supplementaryGroups(for: settings.passdbs).map(\.group.name).filter { getgrnam($0) != nil }
        if try Privileges.drop(to: user, extraGroups: extra) {
            // Changing the user resets the dumpable flag to fs.suid_dumpable: set it off again.
            Daemon.disableCoreDumps()
            let groups = extra.isEmpty ? "" : " (+ group \(extra.joined(separator: ",")))"
            logger.info("running as \(user)\(groups)")
        }
    }

    /// Every listening socket: those systemd passed, else those of `listen`, bound and listening (the
    /// kernel queues connections until `serve` hands the sockets to NIO).
    static func openListeners(_ settings: Settings, logger: Logger) throws -> [Listener] {
        let activated = SocketPath.systemdSockets()
        if activated.isEmpty { return try Listeners.bindConfigured(settings) }
        logger.info("using the \(activated.count) socket(s) passed by systemd (fd \(activated.map(String.init).joined(separator: ",")))")
        return try Listeners.adoptSystemd(activated, configured: settings.listen, logger: logger)
    }

    /// The listening sockets served by NIO: connections queued meanwhile are accepted now.
    private func serve(_ listeners: [Listener]) async throws -> [(ListenEndpoint, Channel)] {
        var channels: [(ListenEndpoint, Channel)] = []
        for (index, listener) in listeners.enumerated() {
            do {
                let channel = try await bootstrap(inet: listener.endpoint.isInet).withBoundSocket(listener.fd).get()
                if let file = listener.socketFile {
                    channel.closeFuture.whenComplete { _ in SocketPath.removeIfOurs(file.path, device: file.device, inode: file.inode) }
                }
                channels.append((listener.endpoint, channel))
            } catch {
                // This one and those not yet handed to NIO are closed here, those already served by NIO
                // with their channels.
                Listeners.close(Array(listeners[index...]))
                for (_, channel) in channels { try? await channel.close() }
                throw SocketPath.Problem(description: "cannot listen on \(listener.endpoint): \(error)")
            }
        }
        return channels
    }

    /// The bootstrap of one kind of listener: the Unix socket (peer credentials, `client_allowlist`) or
    /// TCP (`inet_clients` at accept, TLS when configured). Both count against `max_connections`
    /// together.
    private func bootstrap(inet: Bool) -> ServerBootstrap {
        let box = self.box
        let identity = self.identity
        let counters = self.counters
        let logger = self.logger
        let maxConnections = settings.maxConnections
        let tls = settings.inetTLS
        let refusals = self.refusals
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            // Replies beyond 32 KiB that the client has not read make the channel unwritable: the
            // connection handler then stops taking its input.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 8 * 1024, high: 32 * 1024))
            // Start each connection with a small receive buffer (NIO's default is 2 KB, kept by every
            // idle connection); it grows for clients that pipeline many requests, up to one line.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 16384))
            .childChannelInitializer { channel in
                var transport = ConnectionTransport.unix
                var peerLogger = logger
                if inet {
                    // Checked before anything is counted or sent: a host outside inet_clients gets a close.
                    let peer = InetPeer(channel.remoteAddress)
                    peerLogger[metadataKey: "peer"] = "\(peer.text)"
                    guard peer.isAllowed(by: box.settings.inetClients) else {
                        if let leftOut = refusals.admit(now: MonotonicClock.now()) {
                            let more = leftOut == 0 ? "" : " (\(leftOut) earlier refusals not logged: more than \(RefusalLogLimiter.perSecond) a second)"
                            peerLogger.warning("connection refused: \(peer.text) is not in inet_clients\(more)")
                        }
                        return channel.close()
                    }
                    transport = .inet(address: peer.text)
                }
                // The context of the generation in service: a reload re-reads the certificate and key.
                let tlsContext = inet && tls ? box.tls : nil
                if inet && tls && tlsContext == nil {
                    // Never plain text where TLS is configured (a reload cannot switch TLS off).
                    peerLogger.error("connection refused: TLS is configured but no TLS context is loaded")
                    return channel.close()
                }
                let open = counters.connections.wrappingAdd(1, ordering: .relaxed).newValue
                if open > maxConnections {
                    counters.connections.wrappingSubtract(1, ordering: .relaxed)
                    peerLogger.warning("connection refused: max_connections (\(maxConnections)) reached")
                    return channel.close()
                }
                let cuid = counters.nextCUID.wrappingAdd(1, ordering: .relaxed).oldValue
                return channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        do {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                        } catch {
                            counters.connections.wrappingSubtract(1, ordering: .relaxed)
                            throw error
                        }
                    }
                    let handler = ConnectionHandler(
                        identity: identity, logger: logger, counters: counters,
                        handshakeTimeout: box.settings.handshakeTimeout,
                        allowlist: box.allowlist, transport: transport,
                        onClose: { counters.connections.wrappingSubtract(1, ordering: .relaxed) },
                        makeSession: { io, peer in
                            AuthClientSession(
                                io: io, cuid: cuid, peer: peer, peerAddress: transport.address,
                                serviceProvider: { box.service })
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
    }

    /// A missing socket directory is created only when it is plainly the invoker's own: the socket keeps
    /// the invoker as owner (no listen_user, as in the development configuration) and the directory
    /// above it belongs to the invoker and nobody else may write there (a checkout, a home directory).
    /// Postfix's `private/` is never created here: it belongs to Postfix's installation.
    static func mayCreateSocketDirectory(_ path: String, _ settings: Settings) -> Bool {
        guard settings.listenUser == nil, let slash = path.lastIndex(of: "/") else { return false }
        let parent = String(path[..<slash])
        guard let up = parent.lastIndex(of: "/") else { return false }
        let grandparent = up == parent.startIndex ? "/" : String(parent[..<up])
        var st = stat()
        guard stat(grandparent, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return false }
        return st.st_uid == geteuid() && st.st_mode & 0o022 == 0
    }
}
