/// The mechanisms saslgate knows, by upper-case name. Which ones a daemon advertises is decided by the
/// configuration and by what its passdbs can verify (see `AuthEngine`).
public enum MechanismRegistry {
    /// Every known mechanism, in the order Dovecot lists them.
    public static var all: [MechanismDescriptor] {
        [.plain, .login] + MechanismDescriptor.challengeResponseMechanisms + [.anonymous]
            + MechanismDescriptor.bearerTokenMechanisms
    }

    public static func descriptor(named name: String) -> MechanismDescriptor? {
        let key = name.uppercased()
        return all.first { $0.name == key }
    }
}
