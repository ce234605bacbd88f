#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Size caps for the challenge-response mechanisms (CRAM-MD5, DIGEST-MD5, SCRAM). Dovecot itself only
/// bounds the whole line (16 KiB, protocol.md §3.1); these are tighter so a client cannot make a
/// mechanism hold or hash much data. Real clients send a few hundred bytes.
public enum ChallengeResponseLimits {
    /// One decoded client message (SCRAM client-first/-final, DIGEST-MD5 response, CRAM-MD5 response).
    /// Postfix's own `smtpd_sasl_response_limit` is 12288 base64 bytes, i.e. at most 9216 decoded.
    public static let maxClientMessageBytes = 8192
    /// Authentication and authorization identities and DIGEST-MD5 realms, in bytes after unescaping.
    /// Matches the usual `auth_username` caps (Dovecot truncates log names; Cyrus uses 255).
    public static let maxUserNameBytes = 255
    /// Any other single client field: nonces, `digest-uri`, `cipher`, unknown DIGEST-MD5 directives.
    public static let maxFieldBytes = 1024
    /// DIGEST-MD5 directives in one response (RFC 2831 defines 12; a few unknown ones are tolerated).
    public static let maxDigestDirectives = 32
}

/// Small byte helpers shared by the challenge-response mechanisms. Internal, namespaced so they cannot
/// collide with the rest of the SASL module.
enum ChallengeResponseSupport {
    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let base64DecodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in base64Alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Standard base64 with padding, no line breaks.
    static func base64Encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i < input.count {
            let b0 = input[i]
            let b1: UInt8? = i + 1 < input.count ? input[i + 1] : nil
            let b2: UInt8? = i + 2 < input.count ? input[i + 2] : nil
            out.append(base64Alphabet[Int(b0 >> 2)])
            out.append(base64Alphabet[Int(((b0 & 0x03) << 4) | ((b1 ?? 0) >> 4))])
            out.append(b1 == nil ? UInt8(ascii: "=") : base64Alphabet[Int(((b1! & 0x0F) << 2) | ((b2 ?? 0) >> 6))])
            out.append(b2 == nil ? UInt8(ascii: "=") : base64Alphabet[Int(b2! & 0x3F)])
            i += 3
        }
        return out
    }

    /// Strict standard base64 as SCRAM carries it inside attribute values: the length is a multiple of 4,
    /// padding only at the end, no whitespace, and unused trailing bits must be zero (so every byte
    /// string has exactly one accepted encoding). nil when invalid.
    static func base64Decode<C: Collection>(_ input: C) -> [UInt8]? where C.Element == UInt8 {
        let chars = Array(input)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            let isLast = index + 4 == chars.count
            var values: [UInt8] = []
            var padding = 0
            for c in chars[index..<(index + 4)] {
                if c == UInt8(ascii: "=") {
                    padding += 1
                } else {
                    guard padding == 0 else { return nil }
                    let v = base64DecodeTable[Int(c)]
                    guard v != 0xFF else { return nil }
                    values.append(v)
                }
            }
            guard padding == 0 || (isLast && padding <= 2) else { return nil }
            switch values.count {
            case 4:
                out.append((values[0] << 2) | (values[1] >> 4))
                out.append((values[1] << 4) | (values[2] >> 2))
                out.append((values[2] << 6) | values[3])
            case 3:
                guard values[2] & 0x03 == 0 else { return nil }
                out.append((values[0] << 2) | (values[1] >> 4))
                out.append((values[1] << 4) | (values[2] >> 2))
            case 2:
                guard values[1] & 0x0F == 0 else { return nil }
                out.append((values[0] << 2) | (values[1] >> 4))
            default:
                return nil
            }
            index += 4
        }
        return out
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lower-case hex, as Dovecot's `binary_to_hex`.
    static func hex<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0F)])
        }
        return out
    }

    /// True if every byte is a lower-case hex digit.
    static func isLowerHex<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The bytes as a String if they are valid UTF-8, else nil.
    static func utf8<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: return String(scalars)
            case .error: return nil
            }
        }
    }

    /// Overwrites a buffer that held password-equivalent bytes, then empties it.
    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicit_bzero(base, raw.count) }
        }
        bytes.removeAll()
    }

    /// Splits at every `separator`, keeping empty pieces (`"a,,b"` → `a`, ``, `b`).
    static func split(_ bytes: ArraySlice<UInt8>, separator: UInt8) -> [ArraySlice<UInt8>] {
        bytes.split(separator: separator, omittingEmptySubsequences: false)
    }
}
