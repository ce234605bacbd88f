public import AuthCore

/// One line from an auth client, parsed.
public enum ClientMessage: Equatable, Sendable {
    case version(major: UInt32, minor: UInt32)
    case cpid(UInt32)
    case auth(AuthCommand)
    /// `CONT id data`: data is the raw rest of the line (base64, not unescaped, as Dovecot 2.3).
    case cont(id: UInt32, data: [UInt8])
    case cancel(id: UInt32)
}

/// `AUTH id mechanism [param]... [resp=...]`.
public struct AuthCommand: Equatable, Sendable {
    public var id: UInt32
    /// The mechanism as the client sent it; compare case-insensitively (`mechanismKey` is upper case).
    public var mechanism: String
    public var mechanismKey: String { mechanism.uppercased() }
    public var service: String
    public var localIP: String?
    public var remoteIP: String?
    public var localPort: String?
    public var remotePort: String?
    public var session: String?
    public var secured: Bool = false
    public var validClientCert: Bool = false
    public var noPenalty: Bool = false
    public var finalResponseOK: Bool = false
    public var debug: Bool = false
    /// The raw value of `resp=` (nil when absent; empty for `resp=` or a bare `resp`).
    public var rawInitialResponse: [UInt8]?

    public init(id: UInt32, mechanism: String, service: String) {
        self.id = id
        self.mechanism = mechanism
        self.service = service
    }

    /// How the initial response is to be understood for a client that announced `clientMinor` (§2.2).
    public func initialResponse(clientMinor: UInt32) -> InitialResponse {
        guard let raw = rawInitialResponse else { return .absent }
        if raw.isEmpty {
            return clientMinor >= ProtocolLimits.minorWithEmptyResponse ? .bytes([]) : .absent
        }
        if raw == [UInt8(ascii: "=")] { return .bytes([]) }
        guard let decoded = DovecotBase64.decode(raw) else { return .invalidBase64 }
        return .bytes(decoded)
    }
}

public enum InitialResponse: Equatable, Sendable {
    case absent
    case bytes([UInt8])
    case invalidBase64
}
