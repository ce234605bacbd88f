public import AuthProtocol

/// Per-process values of the greeting: SPID, the CUID counter and the cookie source.
public struct ServerIdentity: Sendable {
    public var pid: Int
    public var randomBytes: @Sendable (Int) -> [UInt8]

    public init(pid: Int, randomBytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.pid = pid
        self.randomBytes = randomBytes
    }

    /// The whole greeting, sent unprompted on accept (protocol.md §1.2): VERSION, MECH..., SPID, CUID,
    /// COOKIE, DONE — in that order, and nothing else.
    func greeting(service: AuthService, cuid: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        ServerMessage.version.encode(into: &out)
        out.append(contentsOf: service.mechLines)
        ServerMessage.spid(pid).encode(into: &out)
        ServerMessage.cuid(cuid).encode(into: &out)
        let cookie = randomBytes(16).map { b in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(b >> 4)], hex[Int(b & 0x0F)]], as: UTF8.self)
        }.joined()
        ServerMessage.cookie(cookie).encode(into: &out)
        ServerMessage.done.encode(into: &out)
        return out
    }
}
