import AuthCore
import AuthProtocol

/// Per-process values of the greeting: SPID, the CUID counter and the cookie source.
public struct ServerIdentity: Sendable {
    public var pid: Int
    public var randomBytes: @Sendable (Int) -> [UInt8]
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    public init(pid: Int, randomBytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.pid = pid
        self.randomBytes = randomBytes
    }

    /// The whole greeting, sent unprompted on accept (docs/PROTOCOL.md, "Handshake"): VERSION, MECH...,
    /// SPID, CUID, COOKIE, DONE — in that order, and nothing else.
    func greeting(service: AuthService, cuid: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(service.mechLines.count + 96)
        ServerMessage.version.encode(into: &out)
        out.append(contentsOf: service.mechLines)
        ServerMessage.spid(pid).encode(into: &out)
        ServerMessage.cuid(cuid).encode(into: &out)
        // COOKIE<TAB>32 hex digits, written in place (the same bytes as ServerMessage.cookie).
        out.append(contentsOf: "COOKIE\t".utf8)
        for byte in randomBytes(16) {
            out.append(Self.hexDigits[Int(byte >> 4)])
            out.append(Self.hexDigits[Int(byte & 0x0F)])
        }
        out.append(0x0A)
        ServerMessage.done.encode(into: &out)
        return out
    }
}
