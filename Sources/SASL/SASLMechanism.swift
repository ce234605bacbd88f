public import AuthCore

/// Who the client says it is, as a mechanism parsed it. The engine normalizes the name
/// (default realm, lower-casing, allowed characters) before any passdb sees it.
public struct MechanismIdentity: Sendable, Equatable {
    /// Authentication identity (whose password is checked).
    public var authcid: String
    /// Authorization identity (who to act as); nil or empty when not given.
    public var authzid: String?
    /// Realm given separately by the mechanism (DIGEST-MD5 `realm=`); nil otherwise.
    public var realm: String?

    public init(authcid: String, authzid: String? = nil, realm: String? = nil) {
        self.authcid = authcid
        self.authzid = authzid
        self.realm = realm
    }
}

/// Input fed to a mechanism by the engine.
public enum MechanismInput: Sendable {
    /// The AUTH command. `nil`: no initial response; `[]`: an empty initial response (§2.2).
    case start(initialResponse: [UInt8]?)
    /// A client CONT, already base64-decoded.
    case response([UInt8])
    /// The plaintext password was verified as correct (answer to `.verifyPlain`). The engine handles
    /// every other passdb outcome itself.
    case verified
    /// The credential found by the passdb (answer to `.lookupCredentials`).
    case credentials(Credential)
    /// The bearer token was refused (answer to `.verifyToken`): the mechanism sends its error challenge
    /// (RFC 7628 §3.2.2) and fails after the client's dummy response.
    case tokenRejected
}

/// Why a mechanism failed. All of them end in a delayed `FAIL`.
public enum MechanismFailure: Sendable, Equatable {
    /// The client's message could not be parsed; no user name is known yet.
    case malformed(String)
    /// The user name is known but the exchange failed (bad proof, wrong nonce, ...).
    case failed(user: String, reason: String)
}

/// What the engine must do next.
public enum MechanismStep: Sendable {
    /// Send `CONT id <base64 of bytes>` and wait for one response.
    case challenge([UInt8])
    /// Check this plaintext password with the passdb chain; answer with `.verified` on success.
    case verifyPlain(MechanismIdentity, password: Secret)
    /// Check this bearer token (OAUTHBEARER, XOAUTH2) with the passdbs that verify tokens, and that it was
    /// issued to the identity's user; answer with `.verified` or `.tokenRejected`. Never a password check.
    case verifyToken(MechanismIdentity, token: Secret)
    /// Fetch this user's credential of this kind; answer with `.credentials`.
    case lookupCredentials(MechanismIdentity, scheme: CredentialScheme)
    /// Authenticated. `finalData` (SCRAM `v=`, DIGEST-MD5 `rspauth=`) goes to the client as an extra CONT
    /// or inside OK with `final-resp-ok`.
    case success(finalData: [UInt8]?)
    case failure(MechanismFailure)
}

/// A SASL mechanism: a small state machine that never touches a socket, a passdb or a clock.
/// The engine calls `step` with `.start` first, then with whatever the previous step asked for.
/// Any input out of order must produce `.failure`.
public protocol SASLMechanism: Sendable {
    mutating func step(_ input: MechanismInput) -> MechanismStep
}

/// Security properties advertised on the MECH line, in Dovecot's fixed order (docs/PROTOCOL.md §1.2).
public struct MechanismFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let `private` = MechanismFlags(rawValue: 1 << 0)
    public static let anonymous = MechanismFlags(rawValue: 1 << 1)
    public static let plaintext = MechanismFlags(rawValue: 1 << 2)
    public static let dictionary = MechanismFlags(rawValue: 1 << 3)
    public static let active = MechanismFlags(rawValue: 1 << 4)
    public static let forwardSecrecy = MechanismFlags(rawValue: 1 << 5)
    public static let mutualAuth = MechanismFlags(rawValue: 1 << 6)

    /// Wire words in the order Dovecot writes them.
    public var words: [String] {
        var out: [String] = []
        if contains(.private) { out.append("private") }
        if contains(.anonymous) { out.append("anonymous") }
        if contains(.plaintext) { out.append("plaintext") }
        if contains(.dictionary) { out.append("dictionary") }
        if contains(.active) { out.append("active") }
        if contains(.forwardSecrecy) { out.append("forward-secrecy") }
        if contains(.mutualAuth) { out.append("mutual-auth") }
        return out
    }
}

/// What a mechanism needs from a passdb; decides whether it may be advertised.
public enum PassdbNeed: Sendable, Equatable {
    case nothing
    case verifyPlain
    /// A bearer token, checked only by passdbs that verify tokens (the oauth2 passdb).
    case verifyToken
    case credentials(CredentialScheme)
}

/// Things a mechanism may need from its surroundings, injectable for RFC test vectors.
public struct MechanismContext: Sendable {
    /// Host name used in CRAM-MD5 challenges and DIGEST-MD5 realms.
    public var hostname: String
    /// Realms offered by DIGEST-MD5 (empty: one `realm=""`).
    public var realms: [String]
    /// Random bytes source (nonces, salts). Must be a CSPRNG in production.
    public var randomBytes: @Sendable (Int) -> [UInt8]
    /// Current Unix time in seconds (CRAM-MD5 challenge).
    public var now: @Sendable () -> Int

    public init(
        hostname: String, realms: [String] = [],
        randomBytes: @escaping @Sendable (Int) -> [UInt8] = MechanismContext.systemRandomBytes,
        now: @escaping @Sendable () -> Int = MechanismContext.systemNow
    ) {
        self.hostname = hostname
        self.realms = realms
        self.randomBytes = randomBytes
        self.now = now
    }

    public static let systemRandomBytes: @Sendable (Int) -> [UInt8] = { n in SecureRandom.bytes(n) }

    public static let systemNow: @Sendable () -> Int = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int(ts.tv_sec)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A mechanism as a value: its name, flags, what it needs, and a factory for a fresh state machine.
public struct MechanismDescriptor: Sendable {
    /// Upper-case SASL name, e.g. `CRAM-MD5`.
    public var name: String
    public var flags: MechanismFlags
    public var need: PassdbNeed
    /// Mechanism accepts NUL bytes in client data (PLAIN, ANONYMOUS).
    public var allowsNUL: Bool
    public var make: @Sendable (MechanismContext) -> any SASLMechanism

    public init(
        name: String, flags: MechanismFlags, need: PassdbNeed, allowsNUL: Bool = false,
        make: @escaping @Sendable (MechanismContext) -> any SASLMechanism
    ) {
        self.name = name
        self.flags = flags
        self.need = need
        self.allowsNUL = allowsNUL
        self.make = make
    }
}
