import AuthProtocol
import NIOCore

/// Splits a connection's input at LF with a hard bound: no LF within `ProtocolLimits.maxLineLength + 1`
/// bytes is a protocol violation (Dovecot's 16384-byte input buffer; docs/PROTOCOL.md). Holds the bytes
/// received but not yet taken as lines, so the connection handler decides when to take the next line
/// (it stops while the client does not read its replies).
struct LineFramer {
    private var buffer: ByteBuffer?
    /// Bytes already scanned without finding an LF, so a slowly arriving line is not rescanned.
    private var scanned = 0

    /// Bytes received and not yet taken.
    var heldBytes: Int { buffer?.readableBytes ?? 0 }

    mutating func append(_ data: ByteBuffer) {
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = data
        } else {
            var data = data
            buffer!.writeBuffer(&data)
        }
    }

    /// The next complete line without its LF; nil when no complete line is held. Throws `.lineTooLong`.
    mutating func nextLine() throws(ProtocolViolation) -> ByteBuffer? {
        guard var held = buffer else { return nil }
        let view = held.readableBytesView
        guard let lf = view[(view.startIndex + scanned)...].firstIndex(of: 0x0A) else {
            scanned = view.count
            if view.count > ProtocolLimits.maxLineLength { throw .lineTooLong }
            return nil
        }
        let length = lf - view.startIndex
        guard length <= ProtocolLimits.maxLineLength else { throw .lineTooLong }
        buffer = nil  // keep the storage uniquely referenced while slicing
        let line = held.readSlice(length: length)!
        held.moveReaderIndex(forwardBy: 1)
        scanned = 0
        // Give the storage back when everything was taken; otherwise keep the rest (compacted now and
        // then so a long-lived connection does not keep a large buffer alive for a few bytes).
        if held.readableBytes > 0 {
            if held.readerIndex > 4096 && held.readableBytes < held.readerIndex { held.discardReadBytes() }
            buffer = held
        }
        return line
    }

    /// Drops everything held (the connection is closing: nothing more is decoded).
    mutating func discard() {
        buffer = nil
        scanned = 0
    }
}
