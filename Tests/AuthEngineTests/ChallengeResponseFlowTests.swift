import AuthConfig
import AuthCore
import AuthCrypto
import AuthEngine
import AuthProtocol
import Logging
import Passdb
import SASL
import Testing

/// The engine's delivery rules for challenge-response mechanisms (docs/PROTOCOL.md, "OK"): final server data
/// goes out as an extra CONT unless the client sent `final-resp-ok`; unservable mechanisms are not offered.
@Suite struct ChallengeResponseFlowTests {
    static let everything = PassdbCapabilities(verifyPlain: true, credentials: Set(CredentialScheme.allCases))

    func service(mechanisms: [String]) throws -> AuthService {
        try makeService(
            { $0.mechanisms = mechanisms; $0.failureDelay = 0 },
            passdbs: [MemoryPassdb(capabilities: Self.everything, users: ["test@example.org": "testpass"])])
    }

    func decode(_ line: String, id: Int) -> [UInt8] {
        DovecotBase64.decode(String(line.dropFirst("CONT\t\(id)\t".count)))!
    }

    @Test func cramMD5() async throws {
        let io = FakeIO()
        let s = makeSession(try service(mechanisms: ["cram-md5"]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tCRAM-MD5\tservice=smtp")  // no TLS needed: not a cleartext mechanism
        let out = io.take()
        #expect(out.count == 1)
        let challenge = decode(out[0], id: 1)
        #expect(String(decoding: challenge, as: UTF8.self).hasSuffix("@test.example>"))
        let response = CRAMMD5.response(user: "test", password: Secret("testpass"), challenge: challenge)
        try s.feed("CONT\t1\t" + DovecotBase64.encode(response))
        await io.drain()
        #expect(io.take() == ["OK\t1\tuser=test@example.org"])

        try s.feed("AUTH\t2\tCRAM-MD5\tservice=smtp")
        let c2 = decode(io.take()[0], id: 2)
        try s.feed("CONT\t2\t" + DovecotBase64.encode(CRAMMD5.response(user: "test", password: Secret("wrong"), challenge: c2)))
        await io.drain()
        #expect(io.take() == ["FAIL\t2\tuser=test@example.org"])
    }

    /// Runs a SCRAM-SHA-256 exchange; returns the lines after the client-final message.
    func scramExchange(finalRespOK: Bool, password: String) async throws -> [String] {
        let io = FakeIO()
        let s = makeSession(try service(mechanisms: ["scram-sha-256"]), io: io)
        try s.handshake(minor: 2)
        let clientFirstBare = "n=test,r=clientnonce123"
        try s.feed("AUTH\t1\tSCRAM-SHA-256\tservice=imap" + (finalRespOK ? "\tfinal-resp-ok" : "")
            + "\tresp=" + DovecotBase64.encode(Array(("n,," + clientFirstBare).utf8)))
        await io.drain()
        let first = io.take()
        #expect(first.count == 1)
        let serverFirst = String(decoding: decode(first[0], id: 1), as: UTF8.self)
        var fields: [String: String] = [:]
        for part in serverFirst.split(separator: ",") { fields[String(part.prefix(1))] = String(part.dropFirst(2)) }
        let salt = DovecotBase64.decode(fields["s"]!)!
        let iterations = Int(fields["i"]!)!
        let withoutProof = "c=biws,r=" + fields["r"]!
        let authMessage = Array((clientFirstBare + "," + serverFirst + "," + withoutProof).utf8)
        let salted = SCRAM.saltedPassword(hash: .sha256, password: Secret(password), salt: salt, iterations: iterations)!
        let proof = SCRAM.clientProof(hash: .sha256, saltedPassword: salted, authMessage: authMessage)
        try s.feed("CONT\t1\t" + DovecotBase64.encode(Array((withoutProof + ",p=" + DovecotBase64.encode(proof)).utf8)))
        await io.drain()
        var out = io.take()
        if out.first?.hasPrefix("CONT\t1\t") == true {
            let v = String(decoding: decode(out[0], id: 1), as: UTF8.self)
            let expected = "v=" + DovecotBase64.encode(SCRAM.serverSignature(hash: .sha256, saltedPassword: salted, authMessage: authMessage))
            #expect(v == expected)
            try s.feed("CONT\t1\t")  // client acknowledges; content ignored
            out += io.take()
        }
        return out
    }

    @Test func scramFinalDataAsExtraContWithoutFinalRespOK() async throws {
        let out = try await scramExchange(finalRespOK: false, password: "testpass")
        #expect(out.count == 2)
        #expect(out.first?.hasPrefix("CONT\t1\t") == true)
        #expect(out.last == "OK\t1\tuser=test@example.org")
    }

    @Test func scramFinalDataInsideOKWithFinalRespOK() async throws {
        let out = try await scramExchange(finalRespOK: true, password: "testpass")
        #expect(out.count == 1)
        #expect(out.first?.hasPrefix("OK\t1\tuser=test@example.org\tresp=") == true)
    }

    @Test func scramWrongPasswordFails() async throws {
        let out = try await scramExchange(finalRespOK: false, password: "nope")
        #expect(out == ["FAIL\t1\tuser=test@example.org"])
    }

    @Test func mechanismsNoPassdbCanServeAreNotAdvertised() throws {
        let plainOnly = try makeService({ $0.mechanisms = ["plain", "cram-md5", "scram-sha-1"] },
            passdbs: [MemoryPassdb(capabilities: PassdbCapabilities(verifyPlain: true), users: [:])])
        #expect(plainOnly.advertised.map(\.name) == ["PLAIN"])
        #expect(plainOnly.unservable == ["CRAM-MD5", "SCRAM-SHA-1"])
        let session = makeSession(plainOnly, io: FakeIO())
        try session.handshake()
        #expect(throws: ProtocolViolation.self) { try session.feed("AUTH\t1\tCRAM-MD5\tservice=smtp") }
    }

    @Test func missingSecretForMechanismFails() async throws {
        struct NoCram: PasswordDatabase {
            var name = "x:nocram"
            var driver = "x"
            var capabilities = PassdbCapabilities(verifyPlain: true, credentials: [.cramMD5])
            func verifyPlain(_ r: PassdbRequest, password: Secret) async -> PassdbResult { .userUnknown }
            func lookupCredentials(_ r: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
                .schemeNotAvailable("stored as SHA512-CRYPT")
            }
        }
        let io = FakeIO()
        let s = makeSession(try makeService({ $0.mechanisms = ["cram-md5"]; $0.failureDelay = 0 }, passdbs: [NoCram()]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tCRAM-MD5\tservice=smtp")
        let c = decode(io.take()[0], id: 1)
        try s.feed("CONT\t1\t" + DovecotBase64.encode(CRAMMD5.response(user: "test", password: Secret("x"), challenge: c)))
        await io.drain()
        #expect(io.take() == ["FAIL\t1\tuser=test@example.org"])
    }
}
