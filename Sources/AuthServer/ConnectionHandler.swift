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
    private let logger: Logger
    private let onClose: () -> Void
    private var session: AuthClientSession?
    private var context: ChannelHandlerContext?
    private var inRead = false
    private var needsFlush = false

    init(identity: ServerIdentity, logger: Logger, onClose: @escaping () -> Void,
         makeSession: @escaping (ConnectionIO) -> AuthClientSession) {
        self.identity = identity
        self.logger = logger
        self.onClose = onClose
        self.makeSession = makeSession
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        let session = makeSession(self)
        self.session = session
        // The whole greeting at once, unprompted (protocol.md §1.2, §1.5).
        send(session.greeting(identity: identity))
        flushIfNeeded()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session else { return }
        let buffer = unwrapInboundIn(data)
        inRead = true
        defer { inRead = false }
        do {
            try session.handle(line: buffer.readableBytesView[...].withContiguousStorageIfAvailable { ArraySlice($0) } ?? ArraySlice(buffer.readableBytesView))
        } catch {
            violation(error, context: context)
        }
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
        session?.connectionClosed()
        session = nil
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

    private var sessionMetadata: Logger.Metadata {
        session.map { ["conn": "\($0.cuid)"] } ?? [:]
    }

    private func violation(_ error: any Error, context: ChannelHandlerContext) {
        guard session != nil else { return }
        logger.warning("protocol violation, closing connection: client \(error)", metadata: sessionMetadata)
        session?.connectionClosed()
        session = nil
        context.close(promise: nil)
    }

    // MARK: ConnectionIO

    func send(_ bytes: [UInt8]) {
        guard let context, session != nil else { return }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
        if !inRead { flushIfNeeded() }
    }

    private func flushIfNeeded() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    func runDetached<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void) {
        guard let context else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(completion, eventLoop: loop)
        Task {
            let result = await work()
            loop.execute { bound.value(result) }
        }
    }

    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> any ScheduledWork {
        guard let context else { return NoWork() }
        let loop = context.eventLoop
        let bound = NIOLoopBound(body, eventLoop: loop)
        let task = loop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { bound.value() }
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
