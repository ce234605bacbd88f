import AuthCore
import AuthEngine
import AuthProtocol
import Logging
import NIOCore

/// One client connection: feeds framed lines to the engine's `AuthClientSession` and carries out its
/// I/O on the channel's event loop.
final class ConnectionHandler: ChannelInboundHandler, ConnectionIO {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let makeSession: (ConnectionIO) -> AuthClientSession
    private let identity: ServerIdentity
    private var logger: Logger
    private let counters: ServerCounters
    private let handshakeTimeout: Double
    private let allowlist: PeerAllowlist
    private let onClose: () -> Void
    private var session: AuthClientSession?
    private var context: ChannelHandlerContext?
    private var inRead = false
    /// Replies not yet handed to the channel (see `send`).
    private var outgoing: ByteBuffer?
    private var flushScheduled = false
    private var handshakeTimer: Scheduled<Void>?
    /// Owed replies last reported to the server-wide counter.
    private var reportedOwed = 0
    private var reportedPending = 0

    init(identity: ServerIdentity, logger: Logger, counters: ServerCounters, handshakeTimeout: Double,
         allowlist: PeerAllowlist, onClose: @escaping () -> Void,
         makeSession: @escaping (ConnectionIO) -> AuthClientSession) {
        self.identity = identity
        self.logger = logger
        self.counters = counters
        self.handshakeTimeout = handshakeTimeout
        self.allowlist = allowlist
        self.onClose = onClose
        self.makeSession = makeSession
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        PeerCredentials.of(context.channel).whenSuccess { peer in
            me.value.start(context: boundContext.value, peer: peer)
        }
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext, peer: PeerCredentials?) {
        guard context.channel.isActive else { return }
        if let peer {
            logger[metadataKey: "peer"] = "\(peer)"
        }
        if !allowlist.isEmpty && !(peer.map(allowlist.allows) ?? false) {
            logger.warning("connection refused: peer not in client_allowlist")
            context.close(promise: nil)
            return
        }
        let session = makeSession(self)
        self.session = session
        logger[metadataKey: "conn"] = "\(session.cuid)"
        logger.debug("client connected")
        // The whole greeting at once, unprompted (protocol.md §1.2, §1.5).
        send(session.greeting(identity: identity))
        flushIfNeeded()
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(handshakeTimeout * 1e9))) {
            loopBoundSelf.value.handshakeTimedOut()
        }
    }

    private func handshakeTimedOut() {
        guard let session, !session.isHandshakeComplete, let context else { return }
        logger.warning("client did not complete the handshake (VERSION, CPID) in time; closing")
        session.connectionClosed()
        self.session = nil
        context.close(promise: nil)
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
        guard let session else { return }
        let buffer = unwrapInboundIn(data)
        inRead = true
        defer { inRead = false }
        do {
            try session.handle(line: buffer.readableBytesView.withContiguousStorageIfAvailable { ArraySlice($0) } ?? ArraySlice(buffer.readableBytesView))
            if session.isHandshakeComplete, let timer = handshakeTimer {
                timer.cancel()
                handshakeTimer = nil
            }
        } catch {
            violation(error, context: context)
        }
        reportOwed()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let violation = error as? ProtocolViolation {
            self.violation(violation, context: context)
        } else if let decoderError = error as? ByteToMessageDecoderError,
            case .dataReceivedInErrorState = decoderError {
            // Already reported and closing.
        } else {
            logger.info("client connection error: \(error)", metadata: sessionMetadata)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        outgoing = nil
        session?.connectionClosed()
        session = nil
        reportOwed()
        self.context = nil
        onClose()
        context.fireChannelInactive()
    }

    /// Stop reading while the client does not read our replies (bounded output buffer).
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.channel.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenComplete { _ in }
        if context.channel.isWritable { context.read() }
        context.fireChannelWritabilityChanged()
    }

    private var sessionMetadata: Logger.Metadata { [:] }

    private func violation(_ error: any Error, context: ChannelHandlerContext) {
        guard session != nil else { return }
        logger.warning("protocol violation, closing connection: client \(error)", metadata: sessionMetadata)
        session?.connectionClosed()
        session = nil
        context.close(promise: nil)
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
            }
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
        }
        return ScheduledTaskWork(task: task)
    }

    func now() -> Double {
        Double(NIODeadline.now().uptimeNanoseconds) / 1e9
    }
}

struct ScheduledTaskWork: ScheduledWork {
    let task: Scheduled<Void>
    func cancel() { task.cancel() }
}

struct NoWork: ScheduledWork {
    func cancel() {}
}
