/// A line the server sends. Encoding escapes every value (§3.2) and appends the LF.
public enum ServerMessage: Equatable, Sendable {
    case version
    case mech(name: String, flags: [String])
    case spid(Int)
    case cuid(UInt64)
    case cookie(String)
    case done
    /// `OK id user=<user> [fields...]`. `user=` always comes first: Postfix and Exim require it.
    case ok(id: UInt32, user: String, fields: [(String, String?)])
    /// `CONT id <base64>`: the trailing TAB stays when the challenge is empty.
    case cont(id: UInt32, base64: String)
    /// `FAIL id [user=..] [code=..] [reason=..] [fields...]`.
    case fail(id: UInt32, user: String?, code: FailCode?, reason: String?, fields: [(String, String?)])

    public static func == (lhs: ServerMessage, rhs: ServerMessage) -> Bool {
        lhs.encoded() == rhs.encoded()
    }

    /// The wire bytes, LF included.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)  // an OK or FAIL line fits: one allocation instead of growing three times
        encode(into: &out)
        return out
    }

    public func encode(into out: inout [UInt8]) {
        func word(_ s: String) { out.append(contentsOf: s.utf8) }
        func tab() { out.append(0x09) }
        func field(_ name: String, _ value: String?) {
            tab()
            word(name)
            if let value {
                out.append(UInt8(ascii: "="))
                TabEscape.escape(value.utf8, into: &out)
            }
        }
        switch self {
        case .version:
            word("VERSION\t\(ProtocolLimits.majorVersion)\t\(ProtocolLimits.minorVersion)")
        case .mech(let name, let flags):
            word("MECH\t")
            TabEscape.escape(name.utf8, into: &out)
            for flag in flags { tab(); word(flag) }
        case .spid(let pid): word("SPID\t\(pid)")
        case .cuid(let cuid): word("CUID\t\(cuid)")
        case .cookie(let cookie): word("COOKIE\t\(cookie)")
        case .done: word("DONE")
        case .ok(let id, let user, let fields):
            word("OK\t\(id)")
            field("user", user)
            for (name, value) in fields { field(name, value) }
        case .cont(let id, let base64):
            word("CONT\t\(id)\t")
            word(base64)
        case .fail(let id, let user, let code, let reason, let fields):
            word("FAIL\t\(id)")
            if let user { field("user", user) }
            if let code { field("code", code.rawValue) }
            if let reason { field("reason", reason) }
            for (name, value) in fields { field(name, value) }
        }
        out.append(0x0A)
    }
}

/// `code=` values of FAIL (protocol 1.2, §2.6).
public enum FailCode: String, Sendable {
    case tempFail = "temp_fail"
    case authzFail = "authz_fail"
    case userDisabled = "user_disabled"
    case passExpired = "pass_expired"
    case invalidBase64 = "invalid_base64"
}
