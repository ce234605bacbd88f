/// Limits of the auth-client protocol. Each one names where it comes from.
public enum ProtocolLimits {
    /// Longest input line in bytes, excluding the LF. Dovecot's input buffer is 16384 bytes
    /// (`AUTH_CLIENT_MAX_LINE_LENGTH`); a line of 16383 bytes + LF is accepted, 16384 + LF is not
    /// (docs/PROTOCOL.md §3.1).
    public static let maxLineLength = 16383
    /// Longest mechanism name we look at (RFC 4422 §3.1: at most 20 characters; be generous).
    public static let maxMechanismNameLength = 64
    /// Most fields accepted on one AUTH line. Dovecot has no explicit cap; every parameter it knows
    /// fits in 32, and the line limit bounds the rest.
    public static let maxAuthFields = 64
    /// Protocol major version we speak (`VERSION\t1\t2`, Dovecot 2.3 = protocol 1.2, §1).
    public static let majorVersion: UInt32 = 1
    public static let minorVersion: UInt32 = 2
    /// From this client minor on, an empty `resp=` means "empty initial response" (§2.2).
    public static let minorWithEmptyResponse: UInt32 = 2
}
