internal import AuthCore

/// OAUTHBEARER (RFC 7628): `gs2-header 0x01 *(key=value 0x01) 0x01`, e.g.
/// `n,a=user@example.org,\x01host=mx\x01port=587\x01auth=Bearer TOKEN\x01\x01`. The GS2 header's
/// authzid (`a=`, with RFC 5801 escapes `=2C` `=3D`) names the user and is required, as by Dovecot;
/// channel binding (`p=`) and the non-standard flag `F` are refused. A refused token gets the error
/// challenge `{"status":"invalid_token","schemes":"bearer","scope":"mail"}`, the client answers 0x01, FAIL.
public struct OAuthBearerMechanism: SASLMechanism {
    /// RFC 7628 §3.2.2 error, with the fields Dovecot's XOAUTH2 error also carries.
    public static let errorChallenge = #"{"status":"invalid_token","schemes":"bearer","scope":"mail"}"#

    private var exchange = BearerTokenExchange(
        errorChallenge: OAuthBearerMechanism.errorChallenge, parse: { OAuthBearerMechanism.parse($0) })

    public init() {}

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        exchange.step(input)
    }

    static func parse(_ bytes: [UInt8]) -> Result<BearerTokenExchange.Message, BearerTokenError> {
        guard let headerEnd = bytes.firstIndex(of: 0x01) else {
            return .failure(BearerTokenError("no 0x01 after the GS2 header"))
        }
        let user: String
        switch gs2Authzid(bytes[..<headerEnd]) {
        case .failure(let error): return .failure(error)
        case .success(let name): user = name
        }
        switch BearerTokenSyntax.bearerToken(in: BearerTokenSyntax.fields(bytes[(headerEnd + 1)...])) {
        case .failure(let error): return .failure(error)
        case .success(let token): return .success(.init(user: user, token: token))
        }
    }

    /// `cbind-flag "," [ "a=" saslname ] ","` (RFC 5801 §4): the unescaped authzid.
    static func gs2Authzid(_ header: ArraySlice<UInt8>) -> Result<String, BearerTokenError> {
        let parts = header.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].isEmpty else { return .failure(BearerTokenError("malformed GS2 header")) }
        guard let flag = parts[0].first else { return .failure(BearerTokenError("malformed GS2 header")) }
        switch flag {
        case UInt8(ascii: "n"), UInt8(ascii: "y"):
            guard parts[0].count == 1 else { return .failure(BearerTokenError("malformed GS2 header")) }
        case UInt8(ascii: "p"): return .failure(BearerTokenError("channel binding is not supported"))
        case UInt8(ascii: "F"): return .failure(BearerTokenError("non-standard GS2 mechanism refused"))
        default: return .failure(BearerTokenError("malformed GS2 header"))
        }
        let authzid = parts[1]
        guard authzid.starts(with: "a=".utf8) else {
            return .failure(BearerTokenError("no a= user name in the GS2 header"))
        }
        guard let unescaped = unescapeSASLName(authzid.dropFirst(2)) else {
            return .failure(BearerTokenError("invalid escaping in the GS2 user name"))
        }
        return BearerTokenSyntax.user(unescaped[...])
    }

    /// RFC 5801 saslname: `=2C` is `,`, `=3D` is `=`; any other `=` or a raw `,` is an error.
    static func unescapeSASLName(_ name: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var i = name.startIndex
        while i < name.endIndex {
            let b = name[i]
            if b == UInt8(ascii: ",") { return nil }
            if b == UInt8(ascii: "=") {
                let code = name[(i + 1)..<min(i + 3, name.endIndex)]
                if code.elementsEqual("2C".utf8) {
                    out.append(UInt8(ascii: ","))
                } else if code.elementsEqual("3D".utf8) {
                    out.append(UInt8(ascii: "="))
                } else {
                    return nil
                }
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return out
    }
}

/// XOAUTH2 (Google's and Microsoft's): `user=USER 0x01 auth=Bearer TOKEN 0x01 0x01`. The user name is
/// taken as it is (the format has no escapes). A refused token gets Dovecot's error challenge
/// `{"status":"401","schemes":"bearer","scope":"mail"}`, the client answers with an empty response, FAIL.
public struct XOAuth2Mechanism: SASLMechanism {
    public static let errorChallenge = #"{"status":"401","schemes":"bearer","scope":"mail"}"#

    private var exchange = BearerTokenExchange(
        errorChallenge: XOAuth2Mechanism.errorChallenge, parse: { XOAuth2Mechanism.parse($0) })

    public init() {}

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        exchange.step(input)
    }

    static func parse(_ bytes: [UInt8]) -> Result<BearerTokenExchange.Message, BearerTokenError> {
        let fields = BearerTokenSyntax.fields(bytes[...])
        let users = fields.filter { $0.starts(with: "user=".utf8) }
        guard users.count == 1 else {
            return .failure(BearerTokenError(users.isEmpty ? "no user= field" : "more than one user= field"))
        }
        let user: String
        switch BearerTokenSyntax.user(users[0].dropFirst(5)) {
        case .failure(let error): return .failure(error)
        case .success(let name): user = name
        }
        switch BearerTokenSyntax.bearerToken(in: fields) {
        case .failure(let error): return .failure(error)
        case .success(let token): return .success(.init(user: user, token: token))
        }
    }
}

extension MechanismDescriptor {
    /// OAUTHBEARER: `plaintext`, as Dovecot flags it (the token is as good as a password on the wire).
    public static let oauthBearer = MechanismDescriptor(
        name: "OAUTHBEARER", flags: [.plaintext], need: .verifyToken, make: { _ in OAuthBearerMechanism() })

    /// XOAUTH2: `plaintext`.
    public static let xoauth2 = MechanismDescriptor(
        name: "XOAUTH2", flags: [.plaintext], need: .verifyToken, make: { _ in XOAuth2Mechanism() })

    /// The two above, advertised only when a passdb verifies tokens.
    public static let bearerTokenMechanisms: [MechanismDescriptor] = [.oauthBearer, .xoauth2]
}
