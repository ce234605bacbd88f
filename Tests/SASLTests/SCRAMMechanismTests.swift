import AuthCore
import AuthCrypto
import Foundation
import SASL
import Testing

private typealias F = CRFixtures

/// One RFC exchange (docs/PROTOCOL.md §5.6), user `user`, password `pencil`.
struct SCRAMVector: Sendable, CustomTestStringConvertible {
    enum CredentialKind: String, Sendable { case stored, plaintext }

    let hash: SCRAMHash
    let credentialKind: CredentialKind
    let clientFirst: String
    let serverNonce: String
    let salt: String
    let serverFirst: String
    let clientFinal: String
    let serverFinal: String

    var testDescription: String { "SCRAM-\(hash.rawValue), \(credentialKind.rawValue) credential" }

    static let rfc5802 = (
        clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        serverNonce: "3rfcNHYJY1ZVvWVs7j",
        salt: "QSXCR+Q6sek8bf92",
        serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    )

    static let rfc7677 = (
        clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
        serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        clientFinal:
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )

    init(_ hash: SCRAMHash, _ kind: CredentialKind) {
        let v = hash == .sha1 ? Self.rfc5802 : Self.rfc7677
        self.hash = hash
        self.credentialKind = kind
        clientFirst = v.clientFirst
        serverNonce = v.serverNonce
        salt = v.salt
        serverFirst = v.serverFirst
        clientFinal = v.clientFinal
        serverFinal = v.serverFinal
    }

    /// The plaintext path draws a 16-byte salt from the context: only RFC 7677's salt has that size.
    static let all: [SCRAMVector] = [.init(.sha1, .stored), .init(.sha256, .stored), .init(.sha256, .plaintext)]

    func mechanism() -> SCRAMMechanism {
        SCRAMMechanism(hash: hash, context: F.context(random: [F.unbase64(salt)]), fixedServerNonce: serverNonce)
    }

    func credential(password: String = "pencil") -> Credential {
        switch credentialKind {
        case .stored:
            try! SCRAM.makeCredential(hash: hash, password: Secret(password), salt: F.unbase64(salt), iterations: 4096)
        case .plaintext:
            .plaintext(Secret(password))
        }
    }

    /// A mechanism that has sent the RFC server-first message.
    func atClientFinal() -> SCRAMMechanism {
        var m = mechanism()
        _ = m.step(.start(initialResponse: F.bytes(clientFirst)))
        _ = m.step(.credentials(credential()))
        return m
    }
}

/// The client side, built from the public helpers (what `saslgate test-auth` would do).
enum SCRAMTestClient {
    /// The client-final message for `serverFirst`, and the `v=` the server must answer.
    static func clientFinal(
        hash: SCRAMHash, password: String, clientFirstBare: String, serverFirst: String, gs2Header: String = "n,,",
        extensions: String = ""
    ) -> (message: String, serverFinal: String) {
        var attributes: [Character: Substring] = [:]
        for field in serverFirst.split(separator: ",") where field.count >= 2 {
            attributes[field.first!] = field.dropFirst(2)
        }
        let salted = SCRAM.saltedPassword(
            hash: hash, password: Secret(password), salt: F.unbase64(String(attributes["s"]!)),
            iterations: Int(attributes["i"]!)!)!
        let withoutProof = "c=\(F.base64(F.bytes(gs2Header))),r=\(attributes["r"]!)\(extensions)"
        let authMessage = F.bytes("\(clientFirstBare),\(serverFirst),\(withoutProof)")
        let proof = SCRAM.clientProof(hash: hash, saltedPassword: salted, authMessage: authMessage)
        let signature = SCRAM.serverSignature(hash: hash, saltedPassword: salted, authMessage: authMessage)
        return ("\(withoutProof),p=\(F.base64(proof))", "v=\(F.base64(signature))")
    }
}

@Suite struct SCRAMMechanismTests {
    static let user = MechanismIdentity(authcid: "user")

    static func scheme(_ hash: SCRAMHash) -> CredentialScheme { hash == .sha1 ? .scramSHA1 : .scramSHA256 }

    // MARK: RFC 5802 §5 and RFC 7677 §3

    @Test(arguments: SCRAMVector.all)
    func rfcExchangeWithInitialResponse(vector: SCRAMVector) {
        var m = vector.mechanism()
        #expect(
            m.crStep(.start(initialResponse: F.bytes(vector.clientFirst)))
                == .lookup(Self.user, Self.scheme(vector.hash)))
        #expect(m.crStep(.credentials(vector.credential())) == .challenge(vector.serverFirst))
        #expect(m.crStep(.response(F.bytes(vector.clientFinal))) == .success(vector.serverFinal))
    }

    @Test(arguments: SCRAMVector.all)
    func rfcExchangeWithoutInitialResponse(vector: SCRAMVector) {
        var m = vector.mechanism()
        #expect(m.crStep(.start(initialResponse: nil)) == .challenge(""))
        #expect(m.crStep(.response(F.bytes(vector.clientFirst))) == .lookup(Self.user, Self.scheme(vector.hash)))
        #expect(m.crStep(.credentials(vector.credential())) == .challenge(vector.serverFirst))
        #expect(m.crStep(.response(F.bytes(vector.clientFinal))) == .success(vector.serverFinal))
    }

    /// The observed Dovecot exchange's base64 initial response (docs/PROTOCOL.md §5.6).
    @Test func observedInitialResponseParses() {
        var m = SCRAMMechanism(hash: .sha1, context: F.randomContext())
        let first = F.unbase64("biwsbj10ZXN0LHI9ck9wck5HZndFYmVSV2diTkVrcU8=")
        #expect(F.string(first) == "n,,n=test,r=rOprNGfwEbeRWgbNEkqO")
        #expect(m.crStep(.start(initialResponse: first)) == .lookup(MechanismIdentity(authcid: "test"), .scramSHA1))
        #expect(
            F.base64(F.bytes(SCRAMVector.rfc5802.clientFirst)) == "biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM")
    }

    @Test(arguments: SCRAMVector.all)
    func helpersReproduceRFCClientFinal(vector: SCRAMVector) {
        let bare = String(vector.clientFirst.dropFirst(3))
        let (message, serverFinal) = SCRAMTestClient.clientFinal(
            hash: vector.hash, password: "pencil", clientFirstBare: bare, serverFirst: vector.serverFirst)
        #expect(message == vector.clientFinal)
        #expect(serverFinal == vector.serverFinal)
    }

    @Test(arguments: SCRAMVector.all)
    func wrongPasswordFails(vector: SCRAMVector) {
        var m = vector.mechanism()
        _ = m.step(.start(initialResponse: F.bytes(vector.clientFirst)))
        #expect(m.crStep(.credentials(vector.credential(password: "pencil2"))) == .challenge(vector.serverFirst))
        #expect(m.crStep(.response(F.bytes(vector.clientFinal))) == .failed(user: "user"))
    }

    // MARK: production nonces and salts

    @Test(arguments: [SCRAMHash.sha1, .sha256])
    func serverFirstShape(hash: SCRAMHash) {
        // Byte 11 maps to ',' (0x21 + 11) and must become '~'; 93 + 94 maps to '~' itself.
        let random = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 11) } + [11, 187]
        var m = SCRAMMechanism(hash: hash, context: F.context(random: [[UInt8](repeating: 7, count: 16), random]))
        _ = m.step(.start(initialResponse: F.bytes("n,,n=user,r=abc")))
        guard case .challenge(let serverFirst) = m.crStep(.credentials(.plaintext(Secret("pencil")))) else {
            Issue.record("expected server-first")
            return
        }
        let fields = serverFirst.split(separator: ",", omittingEmptySubsequences: false)
        #expect(fields.count == 3)
        #expect(fields[0].hasPrefix("r=abc"))
        let snonce = fields[0].dropFirst(5)
        #expect(snonce.utf8.count == SCRAMMechanism.serverNonceLength)
        #expect(snonce.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: ",") })
        #expect(snonce.first == "!")  // random byte 0
        #expect(snonce.dropFirst().first == "~")  // random byte 11 would be ','
        #expect(fields[1] == "s=" + F.base64([UInt8](repeating: 7, count: 16)))
        #expect(fields[2] == "i=4096")
    }

    /// The plaintext path with the system random source, checked by an independent client computation.
    @Test(arguments: [SCRAMHash.sha1, .sha256])
    func plaintextRoundTripWithRandomSalt(hash: SCRAMHash) {
        var m = SCRAMMechanism(hash: hash, context: F.randomContext())
        _ = m.step(.start(initialResponse: F.bytes("n,,n=user,r=clientnonce")))
        guard case .challenge(let serverFirst) = m.crStep(.credentials(.plaintext(Secret("pencil")))) else {
            Issue.record("expected server-first")
            return
        }
        let (message, serverFinal) = SCRAMTestClient.clientFinal(
            hash: hash, password: "pencil", clientFirstBare: "n=user,r=clientnonce", serverFirst: serverFirst)
        #expect(m.crStep(.response(F.bytes(message))) == .success(serverFinal))
    }

    @Test func serverNoncesAndSaltsDiffer() {
        func serverFirst() -> CRStep {
            var m = SCRAMMechanism(hash: .sha256, context: F.randomContext())
            _ = m.step(.start(initialResponse: F.bytes("n,,n=user,r=abc")))
            return m.crStep(.credentials(.plaintext(Secret("pencil"))))
        }
        #expect(serverFirst() != serverFirst())
    }

    /// A client-final captured from one exchange fails in the next one (new server nonce).
    @Test func replayedClientFinalFails() {
        let first = "n,,n=user,r=clientnonce"
        let credential = try! SCRAM.makeCredential(hash: .sha256, password: Secret("pencil"), salt: [1, 2, 3, 4])
        var a = SCRAMMechanism(hash: .sha256, context: F.randomContext())
        _ = a.step(.start(initialResponse: F.bytes(first)))
        guard case .challenge(let serverFirst) = a.crStep(.credentials(credential)) else { return }
        let (message, serverFinal) = SCRAMTestClient.clientFinal(
            hash: .sha256, password: "pencil", clientFirstBare: "n=user,r=clientnonce", serverFirst: serverFirst)
        #expect(a.crStep(.response(F.bytes(message))) == .success(serverFinal))

        var b = SCRAMMechanism(hash: .sha256, context: F.randomContext())
        _ = b.step(.start(initialResponse: F.bytes(first)))
        _ = b.step(.credentials(credential))
        #expect(b.crStep(.response(F.bytes(message))) == .failed(user: "user"))
    }

    // MARK: gs2 header, authzid, escapes, extensions

    struct Gs2Case: Sendable, CustomTestStringConvertible {
        let clientFirst: String
        let gs2Header: String
        let identity: MechanismIdentity
        let extensions: String
        var testDescription: String { clientFirst }
    }

    static let acceptedClientFirsts: [Gs2Case] = [
        Gs2Case(
            clientFirst: "n,,n=user,r=abc", gs2Header: "n,,", identity: MechanismIdentity(authcid: "user"),
            extensions: ""),
        Gs2Case(
            clientFirst: "y,,n=user,r=abc", gs2Header: "y,,", identity: MechanismIdentity(authcid: "user"),
            extensions: ""),
        Gs2Case(
            clientFirst: "n,a=admin,n=user,r=abc", gs2Header: "n,a=admin,",
            identity: MechanismIdentity(authcid: "user", authzid: "admin"), extensions: ""),
        Gs2Case(
            clientFirst: "n,a=ad=2Cmin=3D,n=us=2Cer=3D,r=abc", gs2Header: "n,a=ad=2Cmin=3D,",
            identity: MechanismIdentity(authcid: "us,er=", authzid: "ad,min="), extensions: ""),
        Gs2Case(
            clientFirst: "n,,n=user,r=abc,x=ext", gs2Header: "n,,", identity: MechanismIdentity(authcid: "user"),
            extensions: ""),
        Gs2Case(
            clientFirst: "n,,n=user,r=abc", gs2Header: "n,,", identity: MechanismIdentity(authcid: "user"),
            extensions: ",x=final-ext"),
        Gs2Case(
            clientFirst: "n,,n=\u{00FC}ser,r=!\"#$%&'()*+-./~", gs2Header: "n,,",
            identity: MechanismIdentity(authcid: "\u{00FC}ser"),
            extensions: ""),
    ]

    /// Full exchanges: the gs2 header echoed in c=, the bare message (with extensions) in AuthMessage.
    @Test(arguments: acceptedClientFirsts)
    func acceptedClientFirstVerifies(row: Gs2Case) {
        var m = SCRAMMechanism(hash: .sha256, context: F.randomContext())
        #expect(m.crStep(.start(initialResponse: F.bytes(row.clientFirst))) == .lookup(row.identity, .scramSHA256))
        guard case .challenge(let serverFirst) = m.crStep(.credentials(.plaintext(Secret("pencil")))) else {
            Issue.record("expected server-first")
            return
        }
        let (message, serverFinal) = SCRAMTestClient.clientFinal(
            hash: .sha256, password: "pencil", clientFirstBare: String(row.clientFirst.dropFirst(row.gs2Header.count)),
            serverFirst: serverFirst, gs2Header: row.gs2Header, extensions: row.extensions)
        #expect(m.crStep(.response(F.bytes(message))) == .success(serverFinal))
    }

    @Test func userNameOf255BytesIsAccepted() {
        var m = SCRAMMechanism(hash: .sha1, context: F.randomContext())
        let user = String(repeating: "u", count: 255)
        #expect(
            m.crStep(.start(initialResponse: F.bytes("n,,n=\(user),r=abc")))
                == .lookup(MechanismIdentity(authcid: user), .scramSHA1))
    }

    static let brokenClientFirsts: [CRRow] = [
        CRRow("empty initial response", "", .malformed),
        CRRow("channel binding p=", "p=tls-unique,,n=user,r=abc", .malformed),
        CRRow("channel binding p= tls-exporter", "p=tls-exporter,,n=user,r=abc", .malformed),
        CRRow("unknown cbind flag", "x,,n=user,r=abc", .malformed),
        CRRow("cbind flag nn", "nn,,n=user,r=abc", .malformed),
        CRRow("empty cbind flag", ",,n=user,r=abc", .malformed),
        CRRow("missing gs2 header", "n=user,r=abc", .malformed),
        CRRow("truncated after header", "n,,", .malformed),
        CRRow("truncated after user", "n,,n=user", .malformed),
        CRRow("truncated nonce attribute", "n,,n=user,r", .malformed),
        CRRow("mandatory extension", "n,,m=ext,n=user,r=abc", .malformed),
        CRRow("bad authzid field", "n,b=admin,n=user,r=abc", .malformed),
        CRRow("empty authzid", "n,a=,n=user,r=abc", .malformed),
        CRRow("bad escape in authzid", "n,a=ad=2min,n=user,r=abc", .malformed),
        CRRow("missing n=", "n,,user,r=abc", .malformed),
        CRRow("empty user name", "n,,n=,r=abc", .malformed),
        CRRow("escape =41", "n,,n=us=41er,r=abc", .malformed),
        CRRow("lower-case escape =2c", "n,,n=us=2cer,r=abc", .malformed),
        CRRow("truncated escape", "n,,n=user=2,r=abc", .malformed),
        CRRow("bare = at end", "n,,n=user=,r=abc", .malformed),
        CRRow("attributes swapped", "n,,r=abc,n=user", .malformed),
        CRRow("missing r=", "n,,n=user,x=abc", .malformed),
        CRRow("empty client nonce", "n,,n=user,r=", .malformed),
        CRRow("space in client nonce", "n,,n=user,r=a c", .malformed),
        CRRow("DEL in client nonce", "n,,n=user,r=ab\u{7F}", .malformed),
        CRRow("non-ASCII client nonce", "n,,n=user,r=ab\u{00E9}", .malformed),
        CRRow("duplicated r=", "n,,n=user,r=abc,r=def", .malformed),
        CRRow("duplicated n=", "n,,n=user,r=abc,n=admin", .malformed),
        CRRow("malformed extension", "n,,n=user,r=abc,junk", .malformed),
        CRRow("empty extension", "n,,n=user,r=abc,", .malformed),
        CRRow("user name of 256 bytes", "n,,n=\(String(repeating: "u", count: 256)),r=abc", .malformed),
        CRRow("authzid of 256 bytes", "n,a=\(String(repeating: "a", count: 256)),n=user,r=abc", .malformed),
        CRRow("client nonce of 1025 bytes", "n,,n=user,r=\(String(repeating: "c", count: 1025))", .malformed),
        CRRow("over 8 KiB", "n,,n=user,r=abc,x=\(String(repeating: "x", count: 8192))", .malformed),
        CRRow("NUL in user name", "n,,n=us\0er,r=abc", .malformed),
        CRRow("NUL at the end", "n,,n=user,r=abc\0", .malformed),
        CRRow("invalid UTF-8", F.bytes("n,,n=") + [0xC3, 0x28] + F.bytes(",r=abc"), .malformed),
    ]

    @Test(arguments: brokenClientFirsts)
    func brokenClientFirstFailsAsInitialResponse(row: CRRow) {
        var m = SCRAMMechanism(hash: .sha256, context: F.randomContext())
        #expect(m.crStep(.start(initialResponse: row.message)) == row.expected)
        #expect(m.crStep(.credentials(.plaintext(Secret("pencil")))).isFailure)
    }

    @Test(arguments: brokenClientFirsts)
    func brokenClientFirstFailsAfterEmptyChallenge(row: CRRow) {
        var m = SCRAMMechanism(hash: .sha1, context: F.randomContext())
        #expect(m.crStep(.start(initialResponse: nil)) == .challenge(""))
        #expect(m.crStep(.response(row.message)) == row.expected)
    }

    // MARK: broken client-final messages (against the RFC 7677 exchange)

    static let brokenClientFinals: [CRRow] = {
        let v = SCRAMVector(.sha256, .stored)
        let good = v.clientFinal
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        var flipped = F.unbase64(proof)
        flipped[0] ^= 1
        let rows: [(String, String)] = [
            ("empty", ""),
            ("truncated: no proof", "c=biws,r=\(nonce)"),
            ("truncated inside the proof", String(good.dropLast(4))),
            ("truncated to c=", "c=biws"),
            ("missing c=", "r=\(nonce),p=\(proof)"),
            ("y,, binding for an n,, header", "c=eSws,r=\(nonce),p=\(proof)"),
            ("channel binding data in c=", "c=cD10bHMtdW5pcXVlLCw=,r=\(nonce),p=\(proof)"),
            ("c= not base64 of the header", "c=biws=,r=\(nonce),p=\(proof)"),
            ("client nonce only", "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=\(proof)"),
            ("server nonce altered", "c=biws,r=\(nonce.dropLast())1,p=\(proof)"),
            ("nonce with extra byte", "c=biws,r=\(nonce)x,p=\(proof)"),
            ("proof not last", "c=biws,p=\(proof),r=\(nonce)"),
            ("duplicated r=", "c=biws,r=\(nonce),r=\(nonce),p=\(proof)"),
            ("duplicated c=", "c=biws,r=\(nonce),c=biws,p=\(proof)"),
            ("duplicated p=", "c=biws,r=\(nonce),p=\(proof),p=\(proof)"),
            ("unsigned extension", "c=biws,r=\(nonce),x=ext,p=\(proof)"),
            ("malformed extension", "c=biws,r=\(nonce),junk,p=\(proof)"),
            ("proof is not base64", "c=biws,r=\(nonce),p=!!!!\(proof.dropFirst(4))"),
            ("proof without padding", "c=biws,r=\(nonce),p=\(proof.dropLast())"),
            ("proof with whitespace", "c=biws,r=\(nonce),p= \(proof)"),
            ("proof of 31 bytes", "c=biws,r=\(nonce),p=\(F.base64(Array(F.unbase64(proof).prefix(31))))"),
            ("proof of 33 bytes", "c=biws,r=\(nonce),p=\(F.base64(F.unbase64(proof) + [0]))"),
            ("empty proof", "c=biws,r=\(nonce),p="),
            ("one bit flipped in proof", "c=biws,r=\(nonce),p=\(F.base64(flipped))"),
            ("SCRAM-SHA-1 proof for SCRAM-SHA-256", "c=biws,r=\(nonce),p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
            ("over 8 KiB", "c=biws,r=\(nonce),x=\(String(repeating: "x", count: 8192)),p=\(proof)"),
            ("NUL before proof", "c=biws,r=\(nonce),\0p=\(proof)"),
        ]
        return rows.map { CRRow($0.0, $0.1, .failed(user: "user")) }
    }()

    @Test(arguments: brokenClientFinals)
    func brokenClientFinalFails(row: CRRow) {
        var m = SCRAMVector(.sha256, .stored).atClientFinal()
        #expect(m.crStep(.response(row.message)) == row.expected)
        // No second chance with the right message.
        #expect(m.crStep(.response(F.bytes(SCRAMVector.rfc7677.clientFinal))).isFailure)
    }

    // MARK: credentials

    static let unusableCredentials: [CRCredentialRow] = {
        let salt = F.unbase64(SCRAMVector.rfc7677.salt)
        guard
            case .scram(_, _, _, let storedKey, let serverKey)? = try? SCRAM.makeCredential(
                hash: .sha256, password: Secret("pencil"), salt: salt, iterations: 4096)
        else { fatalError("makeCredential failed") }
        return [
            CRCredentialRow(
                "iterations 4095",
                .scram(hash: .sha256, salt: salt, iterations: 4095, storedKey: storedKey, serverKey: serverKey)),
            CRCredentialRow(
                "iterations 1",
                .scram(hash: .sha256, salt: salt, iterations: 1, storedKey: storedKey, serverKey: serverKey)),
            CRCredentialRow(
                "iterations 0",
                .scram(hash: .sha256, salt: salt, iterations: 0, storedKey: storedKey, serverKey: serverKey)),
            CRCredentialRow(
                "iterations negative",
                .scram(hash: .sha256, salt: salt, iterations: -4096, storedKey: storedKey, serverKey: serverKey)),
            CRCredentialRow(
                "iterations above Int32",
                .scram(
                    hash: .sha256, salt: salt, iterations: Int(Int32.max) + 1, storedKey: storedKey,
                    serverKey: serverKey)),
            CRCredentialRow(
                "SHA-1 credential",
                .scram(hash: .sha1, salt: salt, iterations: 4096, storedKey: storedKey, serverKey: serverKey)),
            CRCredentialRow(
                "empty salt",
                .scram(hash: .sha256, salt: [], iterations: 4096, storedKey: storedKey, serverKey: serverKey)),
            CRCredentialRow(
                "short StoredKey",
                .scram(
                    hash: .sha256, salt: salt, iterations: 4096, storedKey: Secret(storedKey.bytes.dropLast()),
                    serverKey: serverKey)),
            CRCredentialRow(
                "short ServerKey",
                .scram(
                    hash: .sha256, salt: salt, iterations: 4096, storedKey: storedKey,
                    serverKey: Secret(serverKey.bytes.dropLast()))),
            CRCredentialRow("cram-md5 credential", .cramMD5Context(Secret([UInt8](repeating: 1, count: 32)))),
            CRCredentialRow("digest-md5 credential", .digestMD5HA1(Secret([UInt8](repeating: 1, count: 16)))),
        ]
    }()

    @Test(arguments: unusableCredentials)
    func unusableCredentialFails(row: CRCredentialRow) {
        var m = SCRAMVector(.sha256, .stored).mechanism()
        _ = m.step(.start(initialResponse: F.bytes(SCRAMVector.rfc7677.clientFirst)))
        #expect(m.crStep(.credentials(row.credential)) == .failed(user: "user"))
    }

    @Test func storedCredentialAboveMinimumIterations() {
        let credential = try! SCRAM.makeCredential(
            hash: .sha1, password: Secret("pencil"), salt: [9, 9, 9], iterations: 5000)
        var m = SCRAMMechanism(hash: .sha1, context: F.randomContext())
        _ = m.step(.start(initialResponse: F.bytes("n,,n=user,r=abc")))
        guard case .challenge(let serverFirst) = m.crStep(.credentials(credential)) else {
            Issue.record("expected server-first")
            return
        }
        #expect(serverFirst.hasSuffix(",s=CQkJ,i=5000"))
        let (message, serverFinal) = SCRAMTestClient.clientFinal(
            hash: .sha1, password: "pencil", clientFirstBare: "n=user,r=abc", serverFirst: serverFirst)
        #expect(m.crStep(.response(F.bytes(message))) == .success(serverFinal))
    }

    @Test func makeCredentialRefusesWeakParameters() {
        #expect(throws: SCRAMCredentialError.iterationsOutOfRange(4095)) {
            try SCRAM.makeCredential(hash: .sha256, password: Secret("pencil"), salt: [1], iterations: 4095)
        }
        #expect(throws: SCRAMCredentialError.emptySalt) {
            try SCRAM.makeCredential(hash: .sha256, password: Secret("pencil"), salt: [], iterations: 4096)
        }
        guard
            case .scram(let hash, let salt, let iterations, let storedKey, let serverKey) = try! SCRAM.makeCredential(
                hash: .sha1, password: Secret("pencil"), salt: [1, 2], iterations: 4096)
        else {
            Issue.record("expected a scram credential")
            return
        }
        #expect(hash == .sha1 && salt == [1, 2] && iterations == 4096)
        #expect(storedKey.count == 20 && serverKey.count == 20)
        #expect(SCRAM.digestLength(.sha256) == 32)
    }

    // MARK: state machine

    @Test(arguments: CRInput.allCases)
    func outOfOrderInputs(input: CRInput) {
        let vector = SCRAMVector(.sha256, .stored)
        // Before start: only .start is valid.
        if input != .startNone && input != .startEmpty {
            var fresh = vector.mechanism()
            #expect(fresh.crStep(input.input).isFailure, "before start: \(input)")
        }
        // After the empty challenge: only a response is valid.
        if input != .response && input != .emptyResponse {
            var m = vector.mechanism()
            _ = m.step(.start(initialResponse: nil))
            #expect(m.crStep(input.input).isFailure, "awaiting client-first: \(input)")
        }
        // Waiting for the credential.
        if input != .plaintextCredential {
            var m = vector.mechanism()
            _ = m.step(.start(initialResponse: F.bytes(vector.clientFirst)))
            #expect(m.crStep(input.input) == .failed(user: "user"), "awaiting credential: \(input)")
        }
        // Waiting for client-final: a second credential or start fails; a response is judged as client-final.
        var m = vector.atClientFinal()
        #expect(m.crStep(input.input) == .failed(user: "user"), "awaiting client-final: \(input)")
        // After success everything fails.
        var done = vector.atClientFinal()
        #expect(done.crStep(.response(F.bytes(vector.clientFinal))) == .success(vector.serverFinal))
        #expect(done.crStep(input.input).isFailure, "after success: \(input)")
        #expect(done.crStep(.response([])).isFailure, "after success: the final empty CONT is the engine's")
    }
}
