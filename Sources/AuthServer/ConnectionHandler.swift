import AuthCore
import AuthEngine
import AuthProtocol
import Logging
import NIOCore

/// One client connection: frames its input into lines, feeds them to the engine's `AuthClientSession`
/// and carries out its I/O on the channel's event loop.
///
/// Memory stays bounded whatever the client does (docs/SECURITY.md):
/// - A client that does not read its replies is not read either: while the channel is not writable (its
///   replies fill the write buffer), no further line is taken and reading stops; it resumes when the
///   client catches up. Input that still arrives meanwhile (NIO drains a closing socket) is held only up
///   to `ConnectionLimits.maxHeldInput`; past that the connection is closed.
/// - Replies owed to a client (answers that complete while it is paused) are capped at
///   `ConnectionLimits.maxPendingOutput`; past that the connection is closed.
/// - All connections together share `ConnectionLimits.bufferBudget` for held input, pending output and
///   pending requests: while the sum is over it, a connection that holds more than its fair share takes
///   no new line until it drops below.
/// - A connection that is closed decodes nothing more.
final class ConnectionHandler: ChannelInboundHandler, ConnectionIO {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Makes the engine's session once the peer is known (its description goes into the session's logs).
    private let makeSession: (ConnectionIO, String) -> AuthClientSession
    private let identity: ServerIdentity
    private let baseLogger: Logger
    /// `peer` and `conn` of this connection's log lines; the metadata is made only when a line is logged.
    private var peerText: String?
    private var cuid: UInt64?
    private var logger: Logger {
        var logger = baseLogger
        if let peerText { logger[metadataKey: "peer"] = "\(peerText)" }
        if let cuid { logger[metadataKey: "conn"] = "\(cuid)" }
        return logger
    }
    private let counters: ServerCounters
    private let handshakeTimeout: Double
    private let allowlist: PeerAllowlist
    private let transport: ConnectionTransport
    private let onClose: () -> Void
    private var session: AuthClientSession?
    private var context: ChannelHandlerContext?
    private var framer = LineFramer()
    /// No further line is taken (the client does not read its replies, or memory is short).
    private var paused = false
    private var inRead = false
    /// Replies not yet handed to the channel (see `send`).
    private var outgoing: ByteBuffer?
    private var flushScheduled = false
    private var handshakeTimer: Scheduled<Void>?
    /// Owed replies last reported to the server-wide counter.
    private var reportedOwed = 0
    private var reportedPending = 0
    /// This connection's share of `ServerCounters.bufferedBytes` last reported.
    private var reportedBuffered = 0
    /// Runs `runAwaiting` tasks on this connection's event loop (made on first use).
    private var loopExecutor: EventLoopTaskExecutor?

    init(identity: ServerIdentity, logger: Logger, counters: ServerCounters, handshakeTimeout: Double,
         allowlist: PeerAllowlist, transport: ConnectionTransport = .unix, onClose: @escaping () -> Void,
         makeSession: @escaping (ConnectionIO, String) -> AuthClientSession) {
        self.identity = identity
        self.baseLogger = logger
        self.counters = counters
        self.handshakeTimeout = handshakeTimeout
        self.allowlist = allowlist
        self.transport = transport
        self.onClose = onClose
        self.makeSession = makeSession
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        switch transport {
        case .unix:
            let me = NIOLoopBound(self, eventLoop: context.eventLoop)
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            PeerCredentials.of(context.channel).whenSuccess { peer in
                me.value.start(context: boundContext.value, peer: peer)
            }
        case .inet(let address):
            // A TCP peer was checked against inet_clients at accept; client_allowlist (credentials of a
            // local process) does not apply to it.
            start(context: context, inetPeer: address)
        }
        context.fireChannelActive()
    }

    /// A Unix-socket client: its credentials (SO_PEERCRED) are logged and checked against
    /// `client_allowlist`.
    private func start(context: ChannelHandlerContext, peer: PeerCredentials?) {
        guard context.channel.isActive else { return }
        let description = peer.map { "\($0)" }
        peerText = description
        if !allowlist.isEmpty && !(peer.map(allowlist.allows) ?? false) {
            logger.warning("connection refused: peer not in client_allowlist")
            context.close(promise: nil)
            return
        }
        begin(context: context, peerDescription: description ?? "unknown")
        if baseLogger.logLevel <= .debug { logger.debug("client connected") }
    }

    /// A TCP client (`HOST:PORT`): every connection is logged with its address.
    private func start(context: ChannelHandlerContext, inetPeer address: String) {
        guard context.channel.isActive else { return }
        peerText = address
        begin(context: context, peerDescription: address)
        logger.info("client connected over TCP")
    }

    /// The session, the greeting and the handshake timer.
    private func begin(context: ChannelHandlerContext, peerDescription: String) {
        let session = makeSession(self, peerDescription)
        self.session = session
        cuid = session.cuid
        // The whole greeting at once, unprompted (docs/PROTOCOL.md §1.2, §1.5).
        send(session.greeting(identity: identity))
        flushIfNeeded()
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(handshakeTimeout * 1e9))) {
            loopBoundSelf.value.handshakeTimedOut()
        }
    }

    private func handshakeTimedOut() {
        guard let session, !session.isHandshakeComplete, let context else { return }
        close(context, "client did not complete the handshake (VERSION, CPID) in time")
    }

    /// Keeps the server-wide count of owed replies current (graceful shutdown waits for it).
    private func reportOwed() {
        let owed = session?.owedReplies ?? 0
        if owed != reportedOwed {
            counters.owedReplies.wrappingAdd(owed - reportedOwed, ordering: .relaxed)
            reportedOwed = owed
        }
        let pending = session?.pendingRequestCount ?? 0
        if pending != reportedPending {
            counters.pendingRequests.wrappingAdd(pending - reportedPending, ordering: .relaxed)
            reportedPending = pending
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard session != nil else { return }  // closed or refused: nothing is decoded
        framer.append(unwrapInboundIn(data))
        if paused && framer.heldBytes > ConnectionLimits.maxHeldInput {
            close(context, "client keeps sending without reading its replies (\(framer.heldBytes) bytes held)")
            return
        }
        takeLines(context: context)
    }

    /// Hands the held complete lines to the engine while the client reads its replies and memory allows.
    private func takeLines(context: ChannelHandlerContext) {
        inRead = true
        defer { inRead = false }
        while let session, !paused {
            let line: ByteBuffer
            do {
                guard let next = try framer.nextLine() else { break }
                line = next
            } catch {
                violation(error, context: context)
                return
            }
            do {
                try session.handle(line: line.readableBytesView.withContiguousStorageIfAvailable { ArraySlice($0) } ?? ArraySlice(line.readableBytesView))
                if session.isHandshakeComplete, let timer = handshakeTimer {
                    timer.cancel()
                    handshakeTimer = nil
                }
            } catch {
                violation(error, context: context)
                return
            }
            // Let the channel see what piled up, so its writability tells whether the client reads.
            if let out = outgoing, out.readableBytes >= ConnectionLimits.flushChunk { flushIfNeeded() }
            if shouldPause(context) { pause(context) }
        }
        reportOwed()
        reportBuffered()
    }

    /// True when no further line should be taken now.
    private func shouldPause(_ context: ChannelHandlerContext) -> Bool {
        if !context.channel.isWritable { return true }
        // Cheap common case: far below the budget (what this read added is reported when it ends).
        let reported = counters.bufferedBytes.load(ordering: .relaxed)
        if reported < ConnectionLimits.bufferBudget / 2 { return false }
        let total = reported - reportedBuffered + bufferedBytes
        guard total > ConnectionLimits.bufferBudget else { return false }
        let open = Swift.max(1, counters.connections.load(ordering: .relaxed))
        return bufferedBytes > Swift.max(ConnectionLimits.minimumFairShare, ConnectionLimits.bufferBudget / open)
    }

    private func pause(_ context: ChannelHandlerContext) {
        paused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        if context.channel.isWritable {
            // Paused for memory, not by the client: look again soon.
            let me = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: ConnectionLimits.budgetRetry) { me.value.resume() }
        }
    }

    /// Takes lines again once the client reads (writable) and memory allows; reading follows.
    private func resume() {
        guard paused, let context, session != nil else { return }
        paused = false
        takeLines(context: context)
        flushIfNeeded()
        if !paused {
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
    }

    /// Bytes this connection holds: input not yet taken, replies not yet written to the socket, and an
    /// estimate for each unfinished request.
    private var bufferedBytes: Int {
        let queued = (try? context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        return framer.heldBytes + (outgoing?.readableBytes ?? 0) + queued
            + (session?.pendingRequestCount ?? 0) * ConnectionLimits.requestCost
    }

    private func reportBuffered() {
        let now = session == nil ? 0 : bufferedBytes
        if now != reportedBuffered {
            counters.bufferedBytes.wrappingAdd(now - reportedBuffered, ordering: .relaxed)
            reportedBuffered = now
        }
    }

    private func close(_ context: ChannelHandlerContext, _ why: String) {
        logger.warning("closing connection: \(why)")
        session?.connectionClosed()
        session = nil
        framer.discard()
        outgoing = nil
        reportOwed()
        reportBuffered()
        context.close(promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.info("client connection error: \(error)")
        framer.discard()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        outgoing = nil
        framer.discard()
        session?.connectionClosed()
        session = nil
        reportOwed()
        reportBuffered()
        self.context = nil
        onClose()
        context.fireChannelInactive()
    }

    /// The client caught up with its replies: take lines and read again.
    /// The client stopped reading its replies: take no further line. It caught up: take lines and read
    /// again.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            resume()
        } else if !paused && session != nil {
            pause(context)
        }
        reportBuffered()
        context.fireChannelWritabilityChanged()
    }

    /// Replies to the requests before the offending line still go out (as Dovecot's do); then the
    /// connection closes.
    private func violation(_ error: any Error, context: ChannelHandlerContext) {
        guard session != nil else { return }
        if context.channel.isWritable { flushIfNeeded() }
        close(context, "protocol violation: client \(error)")
    }

    // MARK: ConnectionIO

    /// Replies are gathered in one buffer and written once: at the end of a read (`channelReadComplete`)
    /// or, for replies made outside a read (hashing done, failure delay over), once per event-loop tick.
    /// One `write(2)` then carries every reply that became ready together.
    func send(_ bytes: [UInt8]) {
        guard let context, session != nil else { return }
        if outgoing == nil {
            outgoing = context.channel.allocator.buffer(capacity: Swift.max(bytes.count, 512))
        }
        outgoing!.writeBytes(bytes)
        if !context.channel.isWritable {
            // The client does not read: what it is owed may not grow without end.
            let queued = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            if queued + outgoing!.readableBytes > ConnectionLimits.maxPendingOutput {
                close(context, "client does not read its replies (\(queued + outgoing!.readableBytes) bytes pending)")
                return
            }
        }
        if !inRead && !flushScheduled {
            flushScheduled = true
            let me = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute {
                me.value.flushScheduled = false
                me.value.flushIfNeeded()
            }
        }
    }

    private func flushIfNeeded() {
        guard let context, let buffer = outgoing else { return }
        outgoing = nil
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func runDetached<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void) {
        guard let context else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(completion, eventLoop: loop)
        let me = NIOLoopBound(self, eventLoop: loop)
        Task {
            let result = await work()
            loop.execute {
                bound.value(result)
                me.value.reportOwed()
                me.value.reportBuffered()
            }
        }
    }

    /// Passdb lookups (they only wait: hashing goes to the hashing threads, queries to the database's
    /// connections): the task runs on this connection's event loop, so neither its start nor the answer
    /// hops through a thread of the shared concurrency pool.
    func runAwaiting<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void) {
        guard let context else { return }
        let loop = context.eventLoop
        let executor = loopExecutor ?? EventLoopTaskExecutor(loop)
        loopExecutor = executor
        let bound = NIOLoopBound(completion, eventLoop: loop)
        let me = NIOLoopBound(self, eventLoop: loop)
        Task(executorPreference: executor) {
            let result = await work()
            let finish = {
                bound.value(result)
                me.value.reportOwed()
                me.value.reportBuffered()
            }
            if loop.inEventLoop { finish() } else { loop.execute(finish) }
        }
    }

    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> any ScheduledWork {
        guard let context else { return NoWork() }
        let loop = context.eventLoop
        let bound = NIOLoopBound(body, eventLoop: loop)
        let me = NIOLoopBound(self, eventLoop: loop)
        let task = loop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
            bound.value()
            me.value.reportOwed()
            me.value.reportBuffered()
        }
        return ScheduledTaskWork(task: task)
    }

    func now() -> Double {
        Double(NIODeadline.now().uptimeNanoseconds) / 1e9
    }
}

/// How a client reached the daemon.
enum ConnectionTransport: Sendable {
    /// The Unix socket: the peer's credentials are read with SO_PEERCRED.
    case unix
    /// TCP (plain or TLS), from `HOST:PORT`.
    case inet(address: String)

    /// The TCP peer's `HOST:PORT`; nil on the Unix socket.
    var address: String? {
        if case .inet(let address) = self { return address }
        return nil
    }
}

struct ScheduledTaskWork: ScheduledWork {
    let task: Scheduled<Void>
    func cancel() { task.cancel() }
}

struct NoWork: ScheduledWork {
    func cancel() {}
}

/// The bounds of `ConnectionHandler` (docs/SECURITY.md).
enum ConnectionLimits {
    /// Input a paused connection may hold (NIO still delivers what a closing socket has queued).
    static let maxHeldInput = 2 * (ProtocolLimits.maxLineLength + 1)
    /// Replies owed to a client that does not read them; past this the connection is closed.
    static let maxPendingOutput = 256 * 1024
    /// Replies gathered during one read before they are handed to the channel.
    static let flushChunk = 8 * 1024
    /// What all connections together may hold in input, output and pending requests before the largest
    /// holders are paused.
    static let bufferBudget = 16 * 1024 * 1024
    /// No connection is paused for the budget while it holds less than this.
    static let minimumFairShare = 16 * 1024
    /// The memory one unfinished request is counted for (request state, mechanism, names).
    static let requestCost = 1024
    /// How soon a connection paused for the budget looks again.
    static let budgetRetry = TimeAmount.milliseconds(100)
}

/// A Swift concurrency task executor backed by one NIO event loop: jobs run on the loop's thread, between
/// its I/O events (SE-0417 task executor preference).
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}
