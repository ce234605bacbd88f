import AuthCore
import AuthCrypto
import Foundation
import SASL
import Testing

private typealias F = CRFixtures

@Suite struct DigestMD5MechanismTests {
    /// The nonce of the observed Dovecot challenge (docs/PROTOCOL.md §5.5), fed as the 16 random bytes.
    static let observedNonce = "SBnO+3Q6QIF4xBKrW39fiw=="
    static let cnonce = "OA6MHXh6VqTrRk"

    static func mechanism(realms: [String] = []) -> DigestMD5Mechanism {
        DigestMD5Mechanism(context: F.context(realms: realms, random: [F.unbase64(observedNonce)]))
    }

    /// A mechanism that has sent its challenge.
    static func started(realms: [String] = []) -> DigestMD5Mechanism {
        var m = mechanism(realms: realms)
        _ = m.step(.start(initialResponse: nil))
        return m
    }

    /// The lower-case hex `response=` a correct client computes.
    static func responseValue(
        user: String = "test", realm: String = "", password: String = "testpass", nonce: String = observedNonce,
        cnonce: String = cnonce, authzid: String? = nil, nc: String = "00000001", qop: String = "auth",
        uri: String = "smtp/localhost"
    ) -> String {
        let ha1 = DigestMD5.ha1(user: user, realm: realm, password: Secret(password))
        return DigestMD5.digests(
            ha1: ha1, nonce: nonce, cnonce: cnonce, authzid: authzid, nonceCount: nc, qop: qop, digestURI: uri)!
            .response
    }

    static func rspauth(
        user: String = "test", realm: String = "", authzid: String? = nil, uri: String = "smtp/localhost"
    ) -> String {
        let ha1 = DigestMD5.ha1(user: user, realm: realm, password: Secret("testpass"))
        return DigestMD5.digests(
            ha1: ha1, nonce: observedNonce, cnonce: cnonce, authzid: authzid, digestURI: uri)!.rspauth
    }

    /// The response a client like Postfix/Cyrus sends (docs/PROTOCOL.md §5.5 observed shape).
    static let canonical =
        "username=\"test\",realm=\"\",nonce=\"\(observedNonce)\",cnonce=\"\(cnonce)\",nc=00000001,qop=auth,"
        + "digest-uri=\"smtp/localhost\",response=\(responseValue()),charset=utf-8"

    @Test func observedChallenge() {
        var m = Self.mechanism()
        #expect(
            m.crStep(.start(initialResponse: nil))
                == .challenge(
                    "realm=\"\",nonce=\"SBnO+3Q6QIF4xBKrW39fiw==\",qop=\"auth\",charset=\"utf-8\",algorithm=\"md5-sess\""
                ))
    }

    @Test func oneRealmPerConfiguredRealmAndInitialResponseIgnored() {
        var m = Self.mechanism(realms: ["example.org", "we\"ird\\"])
        #expect(
            m.crStep(.start(initialResponse: F.bytes("ignored")))
                == .challenge(
                    "realm=\"example.org\",realm=\"we\\\"ird\\\\\",nonce=\"SBnO+3Q6QIF4xBKrW39fiw==\",qop=\"auth\","
                        + "charset=\"utf-8\",algorithm=\"md5-sess\""))
    }

    @Test func nonceIsBase64Of16RandomBytes() {
        var m = DigestMD5Mechanism(context: F.randomContext())
        guard case .challenge(let text) = m.crStep(.start(initialResponse: nil)) else {
            Issue.record("expected a challenge")
            return
        }
        let nonce = text.split(separator: ",").first { $0.hasPrefix("nonce=") }!.dropFirst(7).dropLast()
        #expect(nonce.count == 24)
        #expect(F.unbase64(String(nonce)).count == 16)
    }

    enum CredentialKind: String, CaseIterable { case plaintext, ha1 }

    @Test(arguments: CredentialKind.allCases)
    func rfc2831Exchange(kind: CredentialKind) {
        let context = F.context(realms: ["elwood.innosoft.com"])
        var m = DigestMD5Mechanism(context: context, fixedNonce: "OA6MG9tEQGm2hh")
        #expect(
            m.crStep(.start(initialResponse: nil))
                == .challenge(
                    "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",charset=\"utf-8\","
                        + "algorithm=\"md5-sess\""))
        // The client's response exactly as RFC 2831 §4 prints it.
        let response =
            "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,"
            + "cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\","
            + "response=d388dad90d4bbd760a152321f2143af7,qop=auth"
        #expect(
            m.crStep(.response(F.bytes(response)))
                == .lookup(MechanismIdentity(authcid: "chris", realm: "elwood.innosoft.com"), .digestMD5))
        let credential: Credential =
            switch kind {
            case .plaintext: .plaintext(Secret("secret"))
            case .ha1:
                .digestMD5HA1(DigestMD5.ha1(user: "chris", realm: "elwood.innosoft.com", password: Secret("secret")))
            }
        #expect(m.crStep(.credentials(credential)) == .success("rspauth=ea40f60335c427b5527b84dbabcdfffd"))
    }

    @Test(arguments: CredentialKind.allCases)
    func observedShapeExchange(kind: CredentialKind) {
        var m = Self.started()
        #expect(m.crStep(.response(F.bytes(Self.canonical))) == .lookup(MechanismIdentity(authcid: "test"), .digestMD5))
        let credential: Credential =
            switch kind {
            case .plaintext: .plaintext(Secret("testpass"))
            case .ha1: .digestMD5HA1(DigestMD5.ha1(user: "test", realm: "", password: Secret("testpass")))
            }
        #expect(m.crStep(.credentials(credential)) == .success("rspauth=\(Self.rspauth())"))
    }

    @Test(arguments: CredentialKind.allCases)
    func wrongPasswordFails(kind: CredentialKind) {
        var m = Self.started()
        _ = m.step(.response(F.bytes(Self.canonical)))
        let credential: Credential =
            switch kind {
            case .plaintext: .plaintext(Secret("testpasS"))
            case .ha1: .digestMD5HA1(DigestMD5.ha1(user: "test", realm: "", password: Secret("testpasS")))
            }
        #expect(m.crStep(.credentials(credential)) == .failed(user: "test"))
    }

    @Test func upperCaseResponseFails() {
        var m = Self.started()
        let upper = Self.canonical.replacingOccurrences(
            of: Self.responseValue(), with: Self.responseValue().uppercased())
        #expect(upper != Self.canonical)
        #expect(m.crStep(.response(F.bytes(upper))) == .lookup(MechanismIdentity(authcid: "test"), .digestMD5))
        #expect(m.crStep(.credentials(.plaintext(Secret("testpass")))) == .failed(user: "test"))
    }

    @Test func authzidIsPartOfA1() {
        let response =
            "username=\"test\",authzid=\"admin\",nonce=\"\(Self.observedNonce)\",cnonce=\"\(Self.cnonce)\","
            + "digest-uri=\"smtp/localhost\",response=\(Self.responseValue(authzid: "admin"))"
        var m = Self.started()
        #expect(
            m.crStep(.response(F.bytes(response)))
                == .lookup(MechanismIdentity(authcid: "test", authzid: "admin"), .digestMD5))
        #expect(
            m.crStep(.credentials(.plaintext(Secret("testpass"))))
                == .success("rspauth=\(Self.rspauth(authzid: "admin"))"))

        // The same response computed without the authzid does not verify.
        let withoutInA1 = response.replacingOccurrences(
            of: Self.responseValue(authzid: "admin"), with: Self.responseValue())
        var n = Self.started()
        _ = n.step(.response(F.bytes(withoutInA1)))
        #expect(n.crStep(.credentials(.plaintext(Secret("testpass")))) == .failed(user: "test"))
    }

    /// docs/PROTOCOL.md §5.5: the realm goes to the engine separately; a name with `@` stays as sent.
    @Test func realmHandling() {
        let a =
            "username=\"u@example.org\",realm=\"\",nonce=\"\(Self.observedNonce)\",cnonce=\"\(Self.cnonce)\","
            + "digest-uri=\"smtp/x\",response=\(Self.responseValue(user: "u@example.org", uri: "smtp/x"))"
        var m = Self.started()
        #expect(m.crStep(.response(F.bytes(a))) == .lookup(MechanismIdentity(authcid: "u@example.org"), .digestMD5))
        #expect(m.crStep(.credentials(.plaintext(Secret("testpass")))).isFailure == false)

        let b =
            "username=\"u\",realm=\"example.org\",nonce=\"\(Self.observedNonce)\",cnonce=\"\(Self.cnonce)\","
            + "digest-uri=\"smtp/x\",response=\(Self.responseValue(user: "u", realm: "example.org", uri: "smtp/x"))"
        var n = Self.started(realms: ["example.org"])
        #expect(
            n.crStep(.response(F.bytes(b)))
                == .lookup(MechanismIdentity(authcid: "u", realm: "example.org"), .digestMD5))
        // Dovecot's stored credential for u@example.org is MD5("u:example.org:pass").
        let stored = DigestMD5.ha1(user: "u", realm: "example.org", password: Secret("testpass"))
        #expect(
            n.crStep(.credentials(.digestMD5HA1(stored)))
                == .success("rspauth=\(Self.rspauth(user: "u", realm: "example.org", uri: "smtp/x"))"))
    }

    // MARK: syntax variants that must verify

    /// Each row re-renders the same values; the response stays valid.
    static let acceptedVariants: [CRRow] = {
        let n = observedNonce
        let c = cnonce
        let r = responseValue()
        let rows: [(String, String)] = [
            ("canonical", canonical),
            (
                "RFC order, all quoted",
                "charset=\"utf-8\",username=\"test\",realm=\"\",nonce=\"\(n)\",nc=\"00000001\",cnonce=\"\(c)\","
                    + "digest-uri=\"smtp/localhost\",response=\"\(r)\",qop=\"auth\""
            ),
            (
                "whitespace around everything",
                "  username = \"test\" ,\trealm=\"\" , nonce =\"\(n)\",\r\n cnonce= \"\(c)\" , nc = 00000001 ,"
                    + "qop=auth , digest-uri=\"smtp/localhost\" , response=\(r) , charset=utf-8  "
            ),
            (
                "upper-case keys and qop",
                "USERNAME=\"test\",Realm=\"\",NONCE=\"\(n)\",CNonce=\"\(c)\",NC=00000001,"
                    + "Digest-URI=\"smtp/localhost\",Response=\(r),Charset=UTF-8"
            ),
            (
                "empty list elements",
                ",,username=\"test\",,nonce=\"\(n)\",cnonce=\"\(c)\",digest-uri=\"smtp/localhost\",response=\(r),,"
            ),
            ("bare user name", "username=test,nonce=\"\(n)\",cnonce=\(c),digest-uri=smtp/localhost,response=\(r)"),
            (
                "escapes in quoted strings",
                "username=\"t\\est\",nonce=\"\(n)\",cnonce=\"\\O\\A6MHXh6VqTrRk\",digest-uri=\"smtp/localhost\",response=\(r)"
            ),
            (
                "no realm, nc, qop or charset",
                "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",digest-uri=\"smtp/localhost\",response=\(r)"
            ),
            (
                "unknown directive and cipher ignored",
                "username=\"test\",foo=\"bar,baz\",nonce=\"\(n)\",cipher=\"rc4\",x-y=1,cnonce=\"\(c)\","
                    + "digest-uri=\"smtp/localhost\",response=\(r)"
            ),
            (
                "maxbuf",
                "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",maxbuf=65536,digest-uri=\"smtp/localhost\",response=\(r)"
            ),
            (
                "nc without leading zeros",
                "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",nc=1,digest-uri=\"smtp/localhost\",response=\(Self.responseValue(nc: "1"))"
            ),
            (
                "qop in upper case",
                "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",qop=AUTH,digest-uri=\"smtp/localhost\",response=\(Self.responseValue(qop: "AUTH"))"
            ),
            (
                "three-part digest-uri",
                "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",digest-uri=\"smtp/mx/example.org\",response=\(Self.responseValue(uri: "smtp/mx/example.org"))"
            ),
            (
                "no digest-uri",
                "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",response=\(Self.responseValue(uri: ""))"
            ),
        ]
        return rows.map { CRRow($0.0, $0.1, .lookup(MechanismIdentity(authcid: "test"), .digestMD5)) }
    }()

    @Test(arguments: acceptedVariants)
    func acceptedVariantsVerify(row: CRRow) {
        var m = Self.started()
        #expect(m.crStep(.response(row.message)) == row.expected)
        guard case .success(let data?) = m.crStep(.credentials(.plaintext(Secret("testpass")))) else {
            Issue.record("expected success")
            return
        }
        #expect(data.hasPrefix("rspauth=") && data.count == 8 + 32)
    }

    // MARK: broken responses

    static let brokenResponses: [CRRow] = {
        let n = observedNonce
        let c = cnonce
        let r = responseValue()
        let tail = "digest-uri=\"smtp/localhost\",response=\(r)"
        let base = "username=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\","
        let rows: [(String, [UInt8])] = [
            ("empty", []),
            ("only commas", F.bytes(",, ,")),
            ("missing nonce", F.bytes("username=\"test\",cnonce=\"\(c)\",\(tail)")),
            ("missing cnonce", F.bytes("username=\"test\",nonce=\"\(n)\",\(tail)")),
            ("missing username", F.bytes("nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("missing response", F.bytes(base + "digest-uri=\"smtp/localhost\"")),
            ("wrong nonce", F.bytes("username=\"test\",nonce=\"AAAAAAAAAAAAAAAAAAAAAA==\",cnonce=\"\(c)\",\(tail)")),
            ("truncated nonce", F.bytes("username=\"test\",nonce=\"\(n.dropLast(2))\",cnonce=\"\(c)\",\(tail)")),
            ("duplicate username", F.bytes(base + "username=\"test\"," + tail)),
            ("duplicate username, other value", F.bytes(base + "username=\"admin\"," + tail)),
            ("duplicate nonce", F.bytes(base + "nonce=\"\(n)\"," + tail)),
            ("duplicate cnonce", F.bytes(base + "cnonce=\"x\"," + tail)),
            ("duplicate nc", F.bytes(base + "nc=00000001,nc=00000001," + tail)),
            ("duplicate qop", F.bytes(base + "qop=auth,qop=auth," + tail)),
            ("duplicate realm", F.bytes(base + "realm=\"\",realm=\"x\"," + tail)),
            ("duplicate digest-uri", F.bytes(base + "digest-uri=\"smtp/x\"," + tail)),
            ("duplicate response", F.bytes(base + tail + ",response=\(r)")),
            ("duplicate charset", F.bytes(base + "charset=utf-8,charset=utf-8," + tail)),
            ("duplicate authzid", F.bytes(base + "authzid=\"a\",authzid=\"a\"," + tail)),
            ("duplicate maxbuf", F.bytes(base + "maxbuf=1,maxbuf=1," + tail)),
            ("nc 2 (re-authentication)", F.bytes(base + "nc=00000002," + tail)),
            ("nc not a number", F.bytes(base + "nc=0000000x," + tail)),
            ("nc empty", F.bytes(base + "nc=\"\"," + tail)),
            ("qop auth-int", F.bytes(base + "qop=auth-int," + tail)),
            ("qop auth-conf", F.bytes(base + "qop=auth-conf," + tail)),
            ("qop unknown", F.bytes(base + "qop=bogus," + tail)),
            ("charset latin-1", F.bytes(base + "charset=iso-8859-1," + tail)),
            ("digest-uri without slash", F.bytes(base + "digest-uri=\"smtp\",response=\(r)")),
            ("response 31 chars", F.bytes(base + "digest-uri=\"smtp/localhost\",response=\(r.dropLast())")),
            ("response 33 chars", F.bytes(base + "digest-uri=\"smtp/localhost\",response=\(r)0")),
            ("empty username", F.bytes("username=\"\",nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("empty cnonce", F.bytes("username=\"test\",nonce=\"\(n)\",cnonce=\"\",\(tail)")),
            ("empty authzid", F.bytes(base + "authzid=\"\"," + tail)),
            ("maxbuf 0", F.bytes(base + "maxbuf=0," + tail)),
            ("maxbuf negative", F.bytes(base + "maxbuf=-1," + tail)),
            ("maxbuf huge", F.bytes(base + "maxbuf=123456789012," + tail)),
            ("unterminated quote", F.bytes(base + tail + ",realm=\"abc")),
            ("escape at the very end", F.bytes(base + tail + ",realm=\"abc\\")),
            ("directive without value", F.bytes(base + "username," + tail)),
            ("garbage after quoted value", F.bytes("username=\"test\"x,nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("quote inside bare value", F.bytes("username=te\"st,nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("space inside bare value", F.bytes("username=te st,nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("bad directive name", F.bytes("user name=\"test\",nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("value without name", F.bytes("=\"test\"," + base + tail)),
            (
                "user name of 256 bytes",
                F.bytes("username=\"\(String(repeating: "u", count: 256))\",nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")
            ),
            ("realm of 256 bytes", F.bytes(base + "realm=\"\(String(repeating: "r", count: 256))\"," + tail)),
            ("authzid of 256 bytes", F.bytes(base + "authzid=\"\(String(repeating: "a", count: 256))\"," + tail)),
            (
                "cnonce of 1025 bytes",
                F.bytes("username=\"test\",nonce=\"\(n)\",cnonce=\"\(String(repeating: "c", count: 1025))\",\(tail)")
            ),
            ("over 8 KiB", F.bytes(String(repeating: " ", count: 8192) + base + tail)),
            ("35 directives", F.bytes(base + String(repeating: "x=1,", count: 30) + tail)),
            ("NUL in a value", F.bytes("username=\"te\0st\",nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")),
            ("NUL at the end", F.bytes(base + tail + "\0")),
            (
                "invalid UTF-8",
                F.bytes("username=\"") + [0xC3, 0x28] + F.bytes("\",nonce=\"\(n)\",cnonce=\"\(c)\",\(tail)")
            ),
        ]
        return rows.map { CRRow($0.0, $0.1, .malformed) }
    }()

    @Test(arguments: brokenResponses)
    func brokenResponsesFail(row: CRRow) {
        var m = Self.started()
        #expect(m.crStep(.response(row.message)) == row.expected)
        #expect(m.crStep(.credentials(.plaintext(Secret("testpass")))).isFailure)
    }

    @Test func userNameOf255BytesIsAccepted() {
        let user = String(repeating: "u", count: 255)
        let response =
            "username=\"\(user)\",nonce=\"\(Self.observedNonce)\",cnonce=\"\(Self.cnonce)\","
            + "digest-uri=\"smtp/localhost\",response=\(Self.responseValue(user: user))"
        var m = Self.started()
        #expect(m.crStep(.response(F.bytes(response))) == .lookup(MechanismIdentity(authcid: user), .digestMD5))
        #expect(m.crStep(.credentials(.plaintext(Secret("testpass")))).isFailure == false)
    }

    /// A response captured from one exchange is useless against the next one (new nonce).
    @Test func replayedResponseFails() {
        var first = DigestMD5Mechanism(context: F.randomContext())
        guard case .challenge(let text) = first.crStep(.start(initialResponse: nil)) else { return }
        let nonce = String(text.split(separator: ",").first { $0.hasPrefix("nonce=") }!.dropFirst(7).dropLast())
        let response =
            "username=\"test\",nonce=\"\(nonce)\",cnonce=\"\(Self.cnonce)\",digest-uri=\"smtp/localhost\","
            + "response=\(Self.responseValue(nonce: nonce))"
        _ = first.step(.response(F.bytes(response)))
        #expect(first.crStep(.credentials(.plaintext(Secret("testpass")))).isFailure == false)

        var second = DigestMD5Mechanism(context: F.randomContext())
        _ = second.step(.start(initialResponse: nil))
        #expect(second.crStep(.response(F.bytes(response))) == .malformed)
    }

    static let unusableCredentials: [CRCredentialRow] = [
        CRCredentialRow("short HA1", .digestMD5HA1(Secret([UInt8](repeating: 1, count: 15)))),
        CRCredentialRow("long HA1", .digestMD5HA1(Secret([UInt8](repeating: 1, count: 17)))),
        CRCredentialRow("cram-md5 credential", .cramMD5Context(Secret([UInt8](repeating: 1, count: 32)))),
        CRCredentialRow(
            "scram credential",
            .scram(hash: .sha256, salt: [1], iterations: 4096, storedKey: Secret([1]), serverKey: Secret([1]))),
    ]

    @Test(arguments: unusableCredentials)
    func unusableCredentialFails(row: CRCredentialRow) {
        var m = Self.started()
        _ = m.step(.response(F.bytes(Self.canonical)))
        #expect(m.crStep(.credentials(row.credential)) == .failed(user: "test"))
    }

    @Test(arguments: CRInput.allCases)
    func outOfOrderInputs(input: CRInput) {
        if input != .startNone && input != .startEmpty {
            var fresh = Self.mechanism()
            #expect(fresh.crStep(input.input).isFailure, "before start: \(input)")
        }
        if input != .response && input != .emptyResponse {
            var m = Self.started()
            #expect(m.crStep(input.input).isFailure, "awaiting response: \(input)")
        }
        if input != .plaintextCredential {
            var m = Self.started()
            _ = m.step(.response(F.bytes(Self.canonical)))
            #expect(m.crStep(input.input) == .failed(user: "test"), "awaiting credential: \(input)")
        }
        var done = Self.started()
        _ = done.step(.response(F.bytes(Self.canonical)))
        #expect(done.crStep(.credentials(.plaintext(Secret("testpass")))) == .success("rspauth=\(Self.rspauth())"))
        #expect(done.crStep(input.input).isFailure, "after success: \(input)")
    }
}
