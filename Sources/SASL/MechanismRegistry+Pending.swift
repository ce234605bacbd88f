extension MechanismRegistry {
    /// Challenge-response mechanisms (CRAM-MD5, DIGEST-MD5, SCRAM-*); filled in as they land.
    static var challengeResponse: [MechanismDescriptor] { [] }
}
