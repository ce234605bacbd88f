import AuthCore
import AuthCrypto
import Testing

/// One RFC example exchange, user `user`, password `pencil`.
struct SCRAMExample: Sendable, CustomTestStringConvertible {
    let hash: SCRAMHash
    let clientFirstBare: String
    let serverFirst: String
    let clientFinalWithoutProof: String
    let salt: String
    let proof: String
    let serverSignature: String

    var testDescription: String { "SCRAM-\(hash.rawValue)" }

    var authMessage: [UInt8] { Array("\(clientFirstBare),\(serverFirst),\(clientFinalWithoutProof)".utf8) }

    /// RFC 5802 §5.
    static let rfc5802 = SCRAMExample(
        hash: .sha1, clientFirstBare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        clientFinalWithoutProof: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", salt: "QSXCR+Q6sek8bf92",
        proof: "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", serverSignature: "rmF9pqV8S7suAoZWja4dJRkFsKQ=")

    /// RFC 7677 §3.
    static let rfc7677 = SCRAMExample(
        hash: .sha256, clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
        serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        clientFinalWithoutProof: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        salt: "W22ZaJ0SNY7soEsUEjb6gQ==", proof: "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        serverSignature: "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")

    static let all = [rfc5802, rfc7677]
}

@Suite("SCRAM key schedule, bounds and stored form")
struct SCRAMTests {
    static func decode(_ base64: String) -> [UInt8] { Base64.decode(Array(base64.utf8))! }

    @Test(arguments: SCRAMExample.all)
    func rfcProofAndSignature(example: SCRAMExample) throws {
        let salted = try #require(
            SCRAM.saltedPassword(
                hash: example.hash, password: Secret("pencil"), salt: Self.decode(example.salt), iterations: 4096))
        #expect(salted.count == SCRAM.digestLength(example.hash))
        let proof = SCRAM.clientProof(hash: example.hash, saltedPassword: salted, authMessage: example.authMessage)
        #expect(Base64.encodeString(proof) == example.proof)
        let signature = SCRAM.serverSignature(
            hash: example.hash, saltedPassword: salted, authMessage: example.authMessage)
        #expect(Base64.encodeString(signature) == example.serverSignature)
    }

    /// The stored credential verifies the RFC proof the way a server does: H(proof XOR
    /// HMAC(StoredKey, AuthMessage)) == StoredKey, and ServerKey signs the same `v=`.
    @Test(arguments: SCRAMExample.all)
    func rfcProofAgainstTheStoredCredential(example: SCRAMExample) throws {
        let credential = try SCRAM.makeCredential(
            hash: example.hash, password: Secret("pencil"), salt: Self.decode(example.salt))
        guard case .scram(let hash, _, let iterations, let storedKey, let serverKey) = credential else {
            Issue.record("not a SCRAM credential")
            return
        }
        #expect(hash == example.hash && iterations == SCRAM.defaultIterations)
        let signature = SCRAM.hmac(hash, key: storedKey, data: example.authMessage)
        let clientKey = zip(Self.decode(example.proof), signature).map { $0 ^ $1 }
        #expect(storedKey.constantTimeEquals(SCRAM.digest(hash, clientKey)))
        #expect(Base64.encodeString(SCRAM.hmac(hash, key: serverKey, data: example.authMessage)) == example.serverSignature)
    }

    /// A `{SCRAM-SHA-1}` value written by `doveadm pw -s SCRAM-SHA-1 -p pencil`.
    static let dovecotSHA1 = "4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw="

    @Test func storedFormMatchesDovecot() throws {
        let credential = try SCRAM.makeCredential(
            hash: .sha1, password: Secret("pencil"), salt: Self.decode("a8dvG4/0zqiCDarpUbAOfw=="))
        let encoded = try #require(SCRAM.encodeStored(credential))
        #expect(String(decoding: encoded, as: UTF8.self) == Self.dovecotSHA1)
        let parsed = try #require(Array(Self.dovecotSHA1.utf8).withUnsafeBufferPointer { SCRAM.parseStored($0, hash: .sha1) })
        #expect(SCRAM.encodeStored(parsed) == encoded)
        #expect(SCRAM.encodeStored(.plaintext(Secret("pencil"))) == nil)
    }

    @Test(arguments: [
        ("4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=", "three fields"),
        ("4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=,", "five fields"),
        ("0,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "zero iterations"),
        ("10000001,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "too many"),
        ("0000004096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "10 digits"),
        ("+4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "sign"),
        ("4096,,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "empty salt"),
        ("4096,a8dvG4/0zqiCDarpUbAOfw,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "unpadded salt"),
        ("4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG,EMhUzZ5PP8EtIXA+UdT4/V90SGw=", "short StoredKey"),
        ("4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=AAAA", "long ServerKey"),
    ])
    func malformedStoredForms(value: String, why: String) {
        let parsed = Array(value.utf8).withUnsafeBufferPointer { SCRAM.parseStored($0, hash: .sha1) }
        #expect(parsed == nil, "\(why)")
    }

    @Test func storedFormOfTheOtherHashIsRefused() {
        #expect(Array(Self.dovecotSHA1.utf8).withUnsafeBufferPointer { SCRAM.parseStored($0, hash: .sha256) } == nil)
    }

    /// Old tables may store fewer iterations than an exchange accepts: the value still parses and
    /// checks a plaintext password.
    @Test func fewIterationsStillCheckAPlaintextPassword() throws {
        let salt: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        let salted = try #require(SCRAM.saltedPassword(hash: .sha256, password: Secret("pencil"), salt: salt, iterations: 1000))
        let storedKey = Secret(SCRAM.digest(.sha256, SCRAM.hmac(.sha256, key: salted, data: Array("Client Key".utf8))))
        let right = Array("pencil".utf8).withUnsafeBufferPointer {
            SCRAM.matches($0, hash: .sha256, salt: salt, iterations: 1000, storedKey: storedKey)
        }
        let wrong = Array("pencil!".utf8).withUnsafeBufferPointer {
            SCRAM.matches($0, hash: .sha256, salt: salt, iterations: 1000, storedKey: storedKey)
        }
        #expect(right && !wrong)
        #expect(SCRAM.storedIterations.contains(1000) && 1000 < SCRAM.minimumIterations)
    }

    @Test func iterationBoundsOfNewCredentials() {
        let password = Secret("pencil")
        #expect(throws: SCRAMCredentialError.iterationsOutOfRange(SCRAM.minimumIterations - 1)) {
            try SCRAM.makeCredential(hash: .sha1, password: password, salt: [1], iterations: SCRAM.minimumIterations - 1)
        }
        #expect(throws: SCRAMCredentialError.iterationsOutOfRange(SCRAM.maximumIterations + 1)) {
            try SCRAM.makeCredential(hash: .sha1, password: password, salt: [1], iterations: SCRAM.maximumIterations + 1)
        }
        #expect(throws: SCRAMCredentialError.emptySalt) {
            try SCRAM.makeCredential(hash: .sha1, password: password, salt: [])
        }
        #expect(SCRAM.storedIterations.upperBound == SCRAM.maximumIterations)
    }

    @Test func derivationRefusesNonsense() {
        #expect(SCRAM.saltedPassword(hash: .sha1, password: Secret("pencil"), salt: [1], iterations: 0) == nil)
        #expect(SCRAM.saltedPassword(hash: .sha1, password: Secret("pencil"), salt: [], iterations: 4096) == nil)
    }
}
