/// Size caps for the challenge-response mechanisms (CRAM-MD5, DIGEST-MD5, SCRAM). Dovecot itself only
/// bounds the whole line (16 KiB, docs/PROTOCOL.md §3.1); these are tighter so a client cannot make a
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
