import AuthProtocol
import NIOCore

/// Splits input at LF with a hard bound: no LF within `ProtocolLimits.maxLineLength + 1` bytes is a
/// protocol violation (Dovecot's 16384-byte input buffer, protocol.md §3.1). Emits lines without the LF.
struct LineFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// Bytes already scanned without finding an LF, so a slowly arriving line is not rescanned.
    private var scanned = 0

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        if let lf = view[(view.startIndex + scanned)...].firstIndex(of: 0x0A) {
            let length = lf - view.startIndex
            guard length <= ProtocolLimits.maxLineLength else { throw ProtocolViolation.lineTooLong }
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            scanned = 0
            context.fireChannelRead(Self.wrapInboundOut(line))
            return .continue
        }
        scanned = view.count
        if view.count > ProtocolLimits.maxLineLength { throw ProtocolViolation.lineTooLong }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A last line without LF is dropped, as Dovecot does.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
