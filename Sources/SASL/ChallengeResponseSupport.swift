internal import AuthCore
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

    /// Standard base64 with padding, no line breaks.
    static func base64Encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        Base64.encode(bytes)
    }

    /// Strict standard base64 as SCRAM carries it inside attribute values: the length is a multiple of 4,
    /// padding only at the end, no whitespace, and unused trailing bits must be zero (so every byte
    /// string has exactly one accepted encoding). nil when invalid.
    static func base64Decode<C: Collection>(_ input: C) -> [UInt8]? where C.Element == UInt8 {
        Base64.decode(input, canonical: true)
    }


    /// Lower-case hex, as Dovecot's `binary_to_hex`.
    static func hex<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        Hex.encode(bytes)
    }

    /// True if every byte is a lower-case hex digit.
    static func isLowerHex<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        Hex.isLower(bytes)
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
        AuthCore.wipe(&bytes)
    }

    /// Splits at every `separator`, keeping empty pieces (`"a,,b"` → `a`, ``, `b`).
    static func split(_ bytes: ArraySlice<UInt8>, separator: UInt8) -> [ArraySlice<UInt8>] {
        bytes.split(separator: separator, omittingEmptySubsequences: false)
    }
}
