#if canImport(Glibc)
import Glibc
#endif
import AuthEngine
import Logging
import NIOCore
import NIOPosix

/// The local control socket (`control_socket`, mode 0600): one command per connection, the answer,
/// then the server closes. Used by `saslgate stats` and `saslgate penalty`.
///   STATS                  → Prometheus text format
///   PENALTY LIST           → one line per key: kind, key, failures, seconds since last, blocked seconds
///   PENALTY CLEAR [TARGET] → "cleared N" (TARGET: an IP or a user, raw or as PENALTY LIST prints it;
///                            none: everything)
/// Keys are login names chosen by clients: they are written through `ControlText.escape`.
enum ControlCommand: Equatable {
    case stats
    case penaltyList
    case penaltyClear(String?)

    /// Longest command line accepted.
    static let maxLineLength = 1024

    static func parse(_ line: String) -> ControlCommand? {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        switch words.first {
        case "STATS" where words.count == 1: return .stats
        case "PENALTY" where words.count == 2 && words[1] == "LIST": return .penaltyList
        case "PENALTY" where words.count >= 2 && words.count <= 3 && words[1] == "CLEAR":
            return .penaltyClear(words.count == 3 ? words[2] : nil)
        default: return nil
        }
    }
}

/// Text for the control socket's answers, which an administrator reads on a terminal. Printable ASCII
/// other than the backslash is written as it is; every other byte of the UTF-8 form becomes `\xHH`
/// and the backslash `\\`. So a client's login name can neither send terminal control sequences
/// nor start a line of its own (a forged row).
enum ControlText {
    static func escape(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) { return text }
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out += "\\\\"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "\\x"
                if byte < 0x10 { out += "0" }
                out += String(byte, radix: 16)
            }
        }
        return out
    }

    /// The text `escape` turned into `escaped`; nil when `escaped` holds a backslash that is not one
    /// of its escapes (then it is not escaped text).
    static func unescape(_ escaped: String) -> String? {
        func hexDigit(_ c: UInt8?) -> UInt8? {
            switch c {
            case .some(let c) where c >= 0x30 && c <= 0x39: c - 0x30
            case .some(let c) where c >= 0x61 && c <= 0x66: c - 0x61 + 10
            case .some(let c) where c >= 0x41 && c <= 0x46: c - 0x41 + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        var rest = escaped.utf8[...]
        while let byte = rest.popFirst() {
            guard byte == UInt8(ascii: "\\") else {
                bytes.append(byte)
                continue
            }
            switch rest.popFirst() {
            case UInt8(ascii: "\\"): bytes.append(byte)
            case UInt8(ascii: "x"):
                guard let high = hexDigit(rest.popFirst()), let low = hexDigit(rest.popFirst()) else { return nil }
                bytes.append(high << 4 | low)
            default: return nil
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

final class ControlServer: Sendable {
    let path: String
    let metrics: DaemonMetrics
    let box: ServiceBox
    let logger: Logger

    init(path: String, metrics: DaemonMetrics, box: ServiceBox, logger: Logger) {
        self.path = path
        self.metrics = metrics
        self.box = box
        self.logger = logger
    }

    func answer(_ command: ControlCommand) -> String {
        switch command {
        case .stats:
            return String(decoding: metrics.render(), as: UTF8.self)
        case .penaltyList:
            let rows = box.service.penalty.list()
            if rows.isEmpty { return "no penalties\n" }
            return rows.map { r in
                let blocked = r.blockedForSeconds.map { "blocked \(Int($0.rounded()))s" } ?? "not blocked"
                return "\(r.kind) \(ControlText.escape(r.key)) failures=\(r.failures) last=\(Int(r.secondsSinceLast.rounded()))s ago \(blocked)"
            }.joined(separator: "\n") + "\n"
        case .penaltyClear(let target):
            let n = box.service.penalty.clear(target.map { ControlText.unescape($0) ?? $0 })
            logger.notice("penalty cleared by the control socket", metadata: ["target": "\(target.map(ControlText.escape) ?? "all")", "entries": "\(n)"])
            return "cleared \(n)\n"
        }
    }

    /// Binds the socket (0600, in a 0750 directory created if missing). Failure is logged, not fatal:
    /// authentication works without the control socket.
    func start(group: any EventLoopGroup) async -> (any Channel)? {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if !dir.isEmpty, access(dir, F_OK) != 0 { mkdir(dir, 0o750) }
        do {
            try SocketPath.removeStale(path)
        } catch {
            logger.warning("control socket disabled: \(error)")
            return nil
        }
        let server = self
        let oldMask = umask(0o177)
        defer { umask(oldMask) }
        do {
            return try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(ControlLineDecoder()))
                        try channel.pipeline.syncOperations.addHandler(ControlHandler(server: server))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        } catch {
            logger.warning("control socket disabled: cannot listen on \(path): \(error)")
            return nil
        }
    }
}

struct ControlLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    struct TooLong: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let lf = buffer.readableBytesView.firstIndex(of: 0x0A) else {
            if buffer.readableBytes > ControlCommand.maxLineLength { throw TooLong() }
            return .needMoreData
        }
        let length = lf - buffer.readerIndex
        var line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        if line.hasSuffix("\r") { line.removeLast() }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}

final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = String
    typealias OutboundOut = ByteBuffer
    let server: ControlServer

    init(server: ControlServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let reply = ControlCommand.parse(line).map(server.answer) ?? "error: unknown command; use STATS, PENALTY LIST or PENALTY CLEAR [ip|user]\n"
        var buffer = context.channel.allocator.buffer(capacity: reply.utf8.count)
        buffer.writeString(reply)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
