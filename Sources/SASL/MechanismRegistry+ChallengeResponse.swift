internal import AuthCore

/// Descriptors of the challenge-response mechanisms (docs/PROTOCOL.md §5.4–5.6). Each needs a passdb that can
/// hand out the matching credential (or the cleartext password).
extension MechanismDescriptor {
    /// CRAM-MD5 (RFC 2195): `dictionary active`.
    public static let cramMD5 = MechanismDescriptor(
        name: "CRAM-MD5", flags: [.dictionary, .active], need: .credentials(.cramMD5),
        make: { CRAMMD5Mechanism(context: $0) })

    /// DIGEST-MD5 (RFC 2831, qop `auth` only): `dictionary active mutual-auth`.
    public static let digestMD5 = MechanismDescriptor(
        name: "DIGEST-MD5", flags: [.dictionary, .active, .mutualAuth], need: .credentials(.digestMD5),
        make: { DigestMD5Mechanism(context: $0) })

    /// SCRAM-SHA-1 (RFC 5802), no channel binding: `mutual-auth`.
    public static let scramSHA1 = MechanismDescriptor(
        name: "SCRAM-SHA-1", flags: [.mutualAuth], need: .credentials(.scramSHA1),
        make: { SCRAMMechanism(hash: .sha1, context: $0) })

    /// SCRAM-SHA-256 (RFC 7677), no channel binding: `mutual-auth`.
    public static let scramSHA256 = MechanismDescriptor(
        name: "SCRAM-SHA-256", flags: [.mutualAuth], need: .credentials(.scramSHA256),
        make: { SCRAMMechanism(hash: .sha256, context: $0) })

    /// The four above, in the order Dovecot lists them on its MECH lines.
    public static let challengeResponseMechanisms: [MechanismDescriptor] = [
        .cramMD5, .digestMD5, .scramSHA1, .scramSHA256,
    ]
}
