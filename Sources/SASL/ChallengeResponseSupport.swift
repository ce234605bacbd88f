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

    /// Splits at every `separator`, keeping empty pieces (`"a,,b"` → `a`, ``, `b`).
    static func split(_ bytes: ArraySlice<UInt8>, separator: UInt8) -> [ArraySlice<UInt8>] {
        bytes.split(separator: separator, omittingEmptySubsequences: false)
    }
}
