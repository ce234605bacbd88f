import AuthCore

/// Base64 exactly as Dovecot 2.3 decodes it (`src/lib/base64.c`, docs/PROTOCOL.md §3.3): standard alphabet,
/// padding required (length without whitespace a multiple of 4), space/TAB/CR/LF skipped anywhere,
/// any other byte, surplus padding or data after padding is invalid; "" decodes to zero bytes. Encoding
/// and the symbol table are AuthCore's `Base64`; only this lenient reading is the wire's own.
public enum DovecotBase64 {
    /// Encodes with padding and no line breaks.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        Base64.encodeString(bytes)
    }

    /// Decodes; nil when the input is not valid by Dovecot's rules.
    public static func decode<C: Collection>(_ input: C) -> [UInt8]? where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var quad: UInt32 = 0
        var n = 0  // symbols in the current quad (data or padding)
        var padding = 0  // '=' seen in the current quad
        var finished = false  // a padded quad has been completed: nothing but whitespace may follow
        for c in input {
            if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { continue }
            if finished { return nil }
            if c == UInt8(ascii: "=") {
                // Padding only in positions 3 and 4 of a quad.
                guard n >= 2 else { return nil }
                padding += 1
                n += 1
            } else {
                guard padding == 0 else { return nil }  // data after padding
                let v = Base64.decodeTable[Int(c)]
                guard v != 0xFF else { return nil }
                quad = (quad << 6) | UInt32(v)
                n += 1
            }
            if n == 4 {
                switch padding {
                case 0:
                    out.append(UInt8(truncatingIfNeeded: quad >> 16))
                    out.append(UInt8(truncatingIfNeeded: quad >> 8))
                    out.append(UInt8(truncatingIfNeeded: quad))
                case 1:
                    // 3 symbols = 18 bits, 16 of data
                    out.append(UInt8(truncatingIfNeeded: quad >> 10))
                    out.append(UInt8(truncatingIfNeeded: quad >> 2))
                    finished = true
                case 2:
                    // 2 symbols = 12 bits, 8 of data
                    out.append(UInt8(truncatingIfNeeded: quad >> 4))
                    finished = true
                default:
                    return nil
                }
                quad = 0
                n = 0
                padding = 0
            }
        }
        guard n == 0 else { return nil }
        return out
    }

    public static func decode(_ string: String) -> [UInt8]? { decode(Array(string.utf8)) }
}
