/// Dovecot's tab-escaping (`src/lib/strescape.c`, docs/PROTOCOL.md §3.2): 0x01 is the escape byte.
/// Writer: 0x01 -> 0x01 '1', TAB -> 0x01 't', CR -> 0x01 'r', LF -> 0x01 'n', NUL -> 0x01 '0'.
/// Reader: 0x01 followed by 0/1/t/r/n gives NUL/0x01/TAB/CR/LF, followed by any other byte gives that
/// byte, and a 0x01 at the very end is dropped.
public enum TabEscape {
    /// Escapes bytes for use as one field of a protocol line.
    public static func escape<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        escape(bytes, into: &out)
        return out
    }

    /// Appends the escaped bytes to `out` (no intermediate array: writers build whole lines this way).
    public static func escape<C: Collection>(_ bytes: C, into out: inout [UInt8]) where C.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { escape($0, into: &out) }
        if done == nil {
            for b in bytes { append(b, to: &out) }
        }
    }

    /// The same for a buffer. A field without a byte to escape (the usual case) is copied whole.
    public static func escape(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        guard bytes.contains(where: needsEscape) else {
            out.append(contentsOf: bytes)
            return
        }
        for b in bytes { append(b, to: &out) }
    }

    @inline(__always)
    private static func needsEscape(_ b: UInt8) -> Bool {
        b <= 0x0D && (b == 0x01 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0)
    }

    @inline(__always)
    private static func append(_ b: UInt8, to out: inout [UInt8]) {
        switch b {
        case 0x01: out.append(0x01); out.append(UInt8(ascii: "1"))
        case 0x09: out.append(0x01); out.append(UInt8(ascii: "t"))
        case 0x0D: out.append(0x01); out.append(UInt8(ascii: "r"))
        case 0x0A: out.append(0x01); out.append(UInt8(ascii: "n"))
        case 0x00: out.append(0x01); out.append(UInt8(ascii: "0"))
        default: out.append(b)
        }
    }

    /// Escapes a string for use as one field of a protocol line.
    public static func escape(_ string: String) -> String {
        let utf8 = string.utf8
        if !utf8.contains(where: needsEscape) { return string }
        return String(decoding: escape(utf8), as: UTF8.self)
    }

    /// Reverses `escape`.
    public static func unescape<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let b = iterator.next() {
            guard b == 0x01 else {
                out.append(b)
                continue
            }
            guard let next = iterator.next() else { break }  // trailing 0x01 is dropped
            switch next {
            case UInt8(ascii: "0"): out.append(0x00)
            case UInt8(ascii: "1"): out.append(0x01)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "n"): out.append(0x0A)
            default: out.append(next)
            }
        }
        return out
    }
}
