import AuthCore
import AuthProtocol

/// Per-process values of the greeting: SPID, the CUID counter and the cookie source.
public struct ServerIdentity: Sendable {
    public var pid: Int
    public var randomBytes: @Sendable (Int) -> [UInt8]

    public init(pid: Int, randomBytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.pid = pid
        self.randomBytes = randomBytes
    }

    /// The whole greeting, sent unprompted on accept (docs/PROTOCOL.md, "Handshake"): VERSION, MECH...,
    /// SPID, CUID, COOKIE, DONE — in that order, and nothing else.
    func greeting(service: AuthService, cuid: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        ServerMessage.version.encode(into: &out)
        out.append(contentsOf: service.mechLines)
        ServerMessage.spid(pid).encode(into: &out)
        ServerMessage.cuid(cuid).encode(into: &out)
        ServerMessage.cookie(Hex.encodeString(randomBytes(16))).encode(into: &out)
        ServerMessage.done.encode(into: &out)
        return out
    }
}
