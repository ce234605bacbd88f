import AuthCore
import AuthCrypto
import SASL
import Testing

private typealias F = CRFixtures

@Suite struct CRAMMD5MechanismTests {
    /// The observed Dovecot exchange (docs/PROTOCOL.md §5.4): random bytes 0,9,2,6,... give those digits.
    static let observedDigits: [UInt8] = [0, 9, 2, 6, 6, 4, 8, 9, 8, 6, 3, 8, 3, 0, 8, 6]
    static let observedChallenge = "<0926648986383086.1795557314@vm>"

    private func observedMechanism() -> CRAMMD5Mechanism {
        CRAMMD5Mechanism(context: F.context(hostname: "vm", now: 1_795_557_314, random: [Self.observedDigits]))
    }

    enum CredentialKind: String, CaseIterable { case plaintext, context }

    private func credential(_ kind: CredentialKind, _ password: String) -> Credential {
        switch kind {
        case .plaintext: .plaintext(Secret(password))
        case .context: .cramMD5Context(CRAMMD5.context(password: Secret(password)))
        }
    }

    @Test(arguments: CredentialKind.allCases)
    func observedDovecotExchange(kind: CredentialKind) {
        var m = observedMechanism()
        let challenge = m.crStep(.start(initialResponse: nil))
        #expect(challenge == .challenge(Self.observedChallenge))
        #expect(F.base64(F.bytes(Self.observedChallenge)) == "PDA5MjY2NDg5ODYzODMwODYuMTc5NTU1NzMxNEB2bT4=")
        let response = F.unbase64("dGVzdCA5OWE3ODdlNTViNWUwNWFkZjJlZjU5N2EwMTU3ZjY5MQ==")
        #expect(F.string(response) == "test 99a787e55b5e05adf2ef597a0157f691")
        #expect(m.crStep(.response(response)) == .lookup(MechanismIdentity(authcid: "test"), .cramMD5))
        #expect(m.crStep(.credentials(credential(kind, "testpass"))) == .success(nil))
    }

    @Test(arguments: CredentialKind.allCases)
    func wrongPasswordFailsWithUser(kind: CredentialKind) {
        var m = observedMechanism()
        _ = m.step(.start(initialResponse: nil))
        _ = m.step(.response(F.bytes("test 99a787e55b5e05adf2ef597a0157f691")))
        #expect(m.crStep(.credentials(credential(kind, "testpasS"))) == .failed(user: "test"))
    }

    @Test func initialResponseIsIgnored() {
        var m = observedMechanism()
        #expect(m.crStep(.start(initialResponse: F.bytes("ignored"))) == .challenge(Self.observedChallenge))
    }

    @Test func challengeShape() {
        var m = CRAMMD5Mechanism(context: F.context(hostname: "mx.example.org", now: 42, random: [[255, 10, 19]]))
        // 255 % 10 = 5, 10 % 10 = 0, 19 % 10 = 9, then zeros.
        #expect(m.crStep(.start(initialResponse: [])) == .challenge("<5090000000000000.42@mx.example.org>"))
    }

    @Test func lastSpaceSeparatesUserName() {
        var m = observedMechanism()
        _ = m.step(.start(initialResponse: nil))
        let step = m.crStep(.response(F.bytes("te st 99a787e55b5e05adf2ef597a0157f691")))
        #expect(step == .lookup(MechanismIdentity(authcid: "te st"), .cramMD5))
    }

    static let brokenResponses: [CRRow] = [
        CRRow("empty", [], .malformed),
        CRRow("no space", F.bytes("test99a787e55b5e05adf2ef597a0157f691"), .malformed),
        CRRow("empty user", F.bytes(" 99a787e55b5e05adf2ef597a0157f691"), .malformed),
        CRRow("upper-case hex", F.bytes("test 99A787E55B5E05ADF2EF597A0157F691"), .failed(user: "test")),
        CRRow("31 hex digits", F.bytes("test 99a787e55b5e05adf2ef597a0157f69"), .failed(user: "test")),
        CRRow("33 hex digits", F.bytes("test 99a787e55b5e05adf2ef597a0157f6910"), .failed(user: "test")),
        CRRow("non-hex", F.bytes("test 99a787e55b5e05adf2ef597a0157f69g"), .failed(user: "test")),
        CRRow(
            "trailing space", F.bytes("test 99a787e55b5e05adf2ef597a0157f691 "),
            .failed(user: "test 99a787e55b5e05adf2ef597a0157f691")),
        CRRow("NUL in user", F.bytes("te\0st 99a787e55b5e05adf2ef597a0157f691"), .malformed),
        CRRow("NUL in digest", F.bytes("test 99a787e55b5e05adf2ef597a0157f69\0"), .malformed),
        CRRow(
            "user of 256 bytes", F.bytes(String(repeating: "u", count: 256) + " 99a787e55b5e05adf2ef597a0157f691"),
            .malformed),
        CRRow(
            "over 8 KiB", F.bytes(String(repeating: "u", count: 8200) + " 99a787e55b5e05adf2ef597a0157f691"), .malformed
        ),
        CRRow("invalid UTF-8 user", [0xC3, 0x28] + F.bytes(" 99a787e55b5e05adf2ef597a0157f691"), .malformed),
    ]

    @Test(arguments: brokenResponses)
    func brokenResponsesFail(row: CRRow) {
        var m = observedMechanism()
        _ = m.step(.start(initialResponse: nil))
        #expect(m.crStep(.response(row.message)) == row.expected)
        // Once failed, the mechanism stays failed.
        #expect(m.crStep(.credentials(.plaintext(Secret("testpass")))).isFailure)
    }

    @Test func userNameOf255BytesIsAccepted() {
        var m = observedMechanism()
        _ = m.step(.start(initialResponse: nil))
        let user = String(repeating: "u", count: 255)
        #expect(
            m.crStep(.response(F.bytes(user + " 99a787e55b5e05adf2ef597a0157f691")))
                == .lookup(MechanismIdentity(authcid: user), .cramMD5))
    }

    static let unusableCredentials: [CRCredentialRow] = [
        CRCredentialRow("short context", .cramMD5Context(Secret([UInt8](repeating: 1, count: 31)))),
        CRCredentialRow("long context", .cramMD5Context(Secret([UInt8](repeating: 1, count: 33)))),
        CRCredentialRow("digest-md5 credential", .digestMD5HA1(Secret([UInt8](repeating: 1, count: 16)))),
        CRCredentialRow(
            "scram credential",
            .scram(hash: .sha1, salt: [1], iterations: 4096, storedKey: Secret([1]), serverKey: Secret([1]))),
    ]

    @Test(arguments: unusableCredentials)
    func unusableCredentialFails(row: CRCredentialRow) {
        var m = observedMechanism()
        _ = m.step(.start(initialResponse: nil))
        _ = m.step(.response(F.bytes("test 99a787e55b5e05adf2ef597a0157f691")))
        #expect(m.crStep(.credentials(row.credential)) == .failed(user: "test"))
    }

    /// Every input that is not the one expected fails, at each stage.
    @Test(arguments: CRInput.allCases)
    func outOfOrderInputs(input: CRInput) {
        // Before start: only .start is valid.
        if input != .startNone && input != .startEmpty {
            var fresh = observedMechanism()
            #expect(fresh.crStep(input.input).isFailure, "before start: \(input)")
        }
        // Waiting for the response: anything but .response fails.
        if input != .response && input != .emptyResponse {
            var m = observedMechanism()
            _ = m.step(.start(initialResponse: nil))
            #expect(m.crStep(input.input).isFailure, "awaiting response: \(input)")
        }
        // Waiting for the credential: anything but .credentials fails, with the user.
        if input != .plaintextCredential {
            var m = observedMechanism()
            _ = m.step(.start(initialResponse: nil))
            _ = m.step(.response(F.bytes("test 99a787e55b5e05adf2ef597a0157f691")))
            #expect(m.crStep(input.input) == .failed(user: "test"), "awaiting credential: \(input)")
        }
        // After success: everything fails.
        var done = observedMechanism()
        _ = done.step(.start(initialResponse: nil))
        _ = done.step(.response(F.bytes("test 99a787e55b5e05adf2ef597a0157f691")))
        #expect(done.crStep(.credentials(.plaintext(Secret("testpass")))) == .success(nil))
        #expect(done.crStep(input.input).isFailure, "after success: \(input)")
    }

    @Test func challengesDiffer() {
        var a = CRAMMD5Mechanism(context: F.randomContext())
        var b = CRAMMD5Mechanism(context: F.randomContext())
        #expect(a.crStep(.start(initialResponse: nil)) != b.crStep(.start(initialResponse: nil)))
    }
}
