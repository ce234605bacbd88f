#if canImport(Glibc)
import Glibc
#endif

/// Standard base64 (RFC 4648 §4) for stored secrets and SASL attribute values: padded, no line breaks.
/// (The wire's lenient variant, which skips white space, is `AuthProtocol.DovecotBase64`.)
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Symbol value of each byte, 0xFF for bytes outside the alphabet. Shared with the wire's lenient
    /// decoder so that there is one table.
    package static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    public static func encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        append(bytes, to: &out)
        return out
    }

    public static func encodeString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: encode(bytes), as: UTF8.self)
    }

    /// Appends the encoding of `bytes` to `out`, so that a secret can be encoded straight into the
    /// buffer that carries it (one copy to wipe, not two).
    public static func append<C: Collection>(_ bytes: C, to out: inout [UInt8]) where C.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { append($0, to: &out) }
        if done != nil { return }
        var copy = Array(bytes)
        defer { copy.wipe() }
        copy.withUnsafeBufferPointer { append($0, to: &out) }
    }

    /// The same for a buffer: the load generator's hot path, without generic overhead.
    public static func append(_ input: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        alphabet.withUnsafeBufferPointer { a in
            let n = input.count
            var i = 0
            while i + 3 <= n {
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                out.append(a[Int(v >> 18 & 63)])
                out.append(a[Int(v >> 12 & 63)])
                out.append(a[Int(v >> 6 & 63)])
                out.append(a[Int(v & 63)])
                i += 3
            }
            switch n - i {
            case 1:
                let v = UInt32(input[i]) << 16
                out.append(a[Int(v >> 18 & 63)])
                out.append(a[Int(v >> 12 & 63)])
                out.append(UInt8(ascii: "="))
                out.append(UInt8(ascii: "="))
            case 2:
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                out.append(a[Int(v >> 18 & 63)])
                out.append(a[Int(v >> 12 & 63)])
                out.append(a[Int(v >> 6 & 63)])
                out.append(UInt8(ascii: "="))
            default:
                break
            }
        }
    }

    /// Strict decoding: the length is a multiple of 4, padding only at the very end, no white space.
    /// `canonical`: also refuse non-zero unused trailing bits, so every byte string has exactly one
    /// accepted encoding (SCRAM). nil when invalid.
    public static func decode<C: Collection>(_ input: C, canonical: Bool = false) -> [UInt8]? where C.Element == UInt8 {
        // One pass over the input, no copy of it: it is often a stored secret.
        let total = input.count
        guard total % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(total / 4 * 3)
        func refuse() -> [UInt8]? {
            out.wipe()
            return nil
        }
        var iterator = input.makeIterator()
        var consumed = 0
        while let first = iterator.next() {
            var bits: UInt32 = 0  // the quad's symbols, 6 bits each
            var symbols = 0
            var padding = 0
            for position in 0..<4 {
                let c = position == 0 ? first : iterator.next()!  // the count is a multiple of 4
                if c == UInt8(ascii: "=") {
                    padding += 1
                    continue
                }
                let d = decodeTable[Int(c)]
                guard padding == 0, d != 0xFF else { return refuse() }
                bits = bits << 6 | UInt32(d)
                symbols += 1
            }
            consumed += 4
            guard padding == 0 || (consumed == total && padding <= 2) else { return refuse() }
            switch symbols {
            case 4:
                out.append(UInt8(truncatingIfNeeded: bits >> 16))
                out.append(UInt8(truncatingIfNeeded: bits >> 8))
                out.append(UInt8(truncatingIfNeeded: bits))
            case 3:  // 18 bits, 16 of data
                guard !canonical || bits & 0x03 == 0 else { return refuse() }
                out.append(UInt8(truncatingIfNeeded: bits >> 10))
                out.append(UInt8(truncatingIfNeeded: bits >> 2))
            case 2:  // 12 bits, 8 of data
                guard !canonical || bits & 0x0F == 0 else { return refuse() }
                out.append(UInt8(truncatingIfNeeded: bits >> 4))
            default:
                return refuse()
            }
        }
        return out
    }
}

/// Lower-case hex (Dovecot's `binary_to_hex`).
public enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return out
    }

    public static func encodeString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: encode(bytes), as: UTF8.self)
    }

    /// Hex in either case; nil when the length is odd or a digit is invalid (a partial result is wiped).
    public static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        guard text.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var it = text.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = nibble(hi), let l = nibble(lo) else {
                out.wipe()
                return nil
            }
            out.append(h << 4 | l)
        }
        return out
    }

    /// True if every byte is a lower-case hex digit.
    public static func isLower<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

extension Array where Element == UInt8 {
    /// Overwrites bytes that held a password or password-equivalent material, then empties the array.
    /// Best effort: copies the runtime made earlier (a grown buffer) are not reached.
    public mutating func wipe() {
        withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicitZero(base, raw.count) }
        }
        removeAll()
    }
}

/// `explicit_bzero`: zeroes memory in a way the optimizer may not remove.
public func explicitZero(_ pointer: UnsafeMutableRawPointer, _ count: Int) {
    explicit_bzero(pointer, count)
}
