#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Base64 and hex as stored in password fields. Kept internal and allocation-light: the table validates
// every field at load, so these work on raw buffers and never build Strings.

enum PasswordEncoding {
    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let base64Table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in base64Alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Standard base64 with padding, no line breaks.
    static func base64Encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var it = bytes.makeIterator()
        while let b0 = it.next() {
            let b1 = it.next()
            let b2 = b1 == nil ? nil : it.next()
            out.append(base64Alphabet[Int(b0 >> 2)])
            out.append(base64Alphabet[Int(((b0 & 0x03) << 4) | ((b1 ?? 0) >> 4))])
            out.append(b1.map { base64Alphabet[Int((($0 & 0x0F) << 2) | ((b2 ?? 0) >> 6))] } ?? UInt8(ascii: "="))
            out.append(b2.map { base64Alphabet[Int($0 & 0x3F)] } ?? UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict standard base64: padding required, no whitespace. Nil when invalid.
    static func base64Decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            let last = i + 4 == input.count
            let c0 = base64Table[Int(input[i])]
            let c1 = base64Table[Int(input[i + 1])]
            guard c0 != 0xFF, c1 != 0xFF else { return nil }
            let p2 = input[i + 2] == UInt8(ascii: "=")
            let p3 = input[i + 3] == UInt8(ascii: "=")
            guard !p2 || p3, !(p2 || p3) || last else { return nil }
            let c2 = p2 ? 0 : base64Table[Int(input[i + 2])]
            let c3 = p3 ? 0 : base64Table[Int(input[i + 3])]
            guard c2 != 0xFF, c3 != 0xFF else { return nil }
            out.append(c0 << 2 | c1 >> 4)
            if !p2 { out.append(c1 << 4 | c2 >> 2) }
            if !p3 { out.append(c2 << 6 | c3) }
            i += 4
        }
        return out
    }

    static func base64Decode<C: Collection>(_ input: C) -> [UInt8]? where C.Element == UInt8 {
        let array = Array(input)
        return array.withUnsafeBufferPointer { base64Decode($0) }
    }

    /// Lower-case hex.
    static func hexEncode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex in either case; nil when the length is odd or a digit is invalid.
    static func hexDecode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard input.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2)
        var i = 0
        while i < input.count {
            guard let hi = hexValue(input[i]), let lo = hexValue(input[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Array where Element == UInt8 {
    /// Zeroes the array's bytes in place (best effort: earlier copies made by the runtime are not reached).
    mutating func wipe() {
        withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicitZero(base, raw.count) }
        }
    }
}

/// `explicit_bzero`, which the optimizer may not remove.
func explicitZero(_ pointer: UnsafeMutableRawPointer, _ count: Int) {
    explicit_bzero(pointer, count)
}
