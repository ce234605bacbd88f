import AuthCore
import SASL
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct PlainMechanismTests {
    @Test func initialResponseVerifies() {
        var m = PlainMechanism()
        guard case .verifyPlain(let id, let pw) = m.step(.start(initialResponse: bytes("\0test\0testpass"))) else {
            Issue.record("expected verifyPlain"); return
        }
        #expect(id == MechanismIdentity(authcid: "test"))
        #expect(pw.constantTimeEquals(bytes("testpass")))
        #expect("\(pw)" == "<hidden>")
        guard case .success(nil) = m.step(.verified) else { Issue.record("expected success"); return }
    }

    @Test func noInitialResponseGetsEmptyChallenge() {
        var m = PlainMechanism()
        guard case .challenge(let c) = m.step(.start(initialResponse: nil)), c.isEmpty else {
            Issue.record("expected empty challenge"); return
        }
        guard case .verifyPlain(let id, _) = m.step(.response(bytes("zid\0test\0pw"))) else {
            Issue.record("expected verifyPlain"); return
        }
        #expect(id.authzid == "zid")
    }

    @Test(arguments: [
        "",  // empty initial response: fails at once (docs/PROTOCOL.md §2.2)
        "test\0testpass",  // one NUL
        "\0test\0test\0pass",  // three NULs
        "\0\0testpass",  // empty authcid
        "\0" + String(repeating: "u", count: 256) + "\0pw",  // oversized authcid
        "\0u\0" + String(repeating: "p", count: 256),  // oversized password
    ])
    func brokenMessagesFail(message: String) {
        var m = PlainMechanism()
        guard case .failure = m.step(.start(initialResponse: bytes(message))) else {
            Issue.record("expected failure for \(message.debugDescription)"); return
        }
    }

    @Test func invalidUTF8Fails() {
        var m = PlainMechanism()
        guard case .failure = m.step(.start(initialResponse: [0, 0xFF, 0xFE, 0, 0x41])) else {
            Issue.record("expected failure"); return
        }
    }

    @Test func outOfOrderInputFails() {
        var m = PlainMechanism()
        guard case .failure = m.step(.verified) else { Issue.record("expected failure"); return }
        var n = PlainMechanism()
        _ = n.step(.start(initialResponse: bytes("\0a\0b")))
        guard case .failure = n.step(.response([])) else { Issue.record("expected failure"); return }
    }
}

@Suite struct LoginMechanismTests {
    @Test func twoPrompts() {
        var m = LoginMechanism()
        guard case .challenge(let c1) = m.step(.start(initialResponse: nil)) else { Issue.record("prompt 1"); return }
        #expect(c1 == bytes("Username:"))
        guard case .challenge(let c2) = m.step(.response(bytes("test"))) else { Issue.record("prompt 2"); return }
        #expect(c2 == bytes("Password:"))
        guard case .verifyPlain(let id, let pw) = m.step(.response(bytes("testpass"))) else { Issue.record("verify"); return }
        #expect(id.authcid == "test")
        #expect(pw.constantTimeEquals(bytes("testpass")))
        guard case .success = m.step(.verified) else { Issue.record("success"); return }
    }

    @Test func initialResponseIsUserName() {
        var m = LoginMechanism()
        guard case .challenge(let c) = m.step(.start(initialResponse: bytes("test"))) else { Issue.record("prompt"); return }
        #expect(c == bytes("Password:"))
    }

    @Test func emptyInitialResponseStillPrompts() {
        var m = LoginMechanism()
        guard case .challenge(let c) = m.step(.start(initialResponse: [])) else { Issue.record("prompt"); return }
        #expect(c == bytes("Username:"))
    }

    @Test func emptyUserFailsWithEmptyName() {
        var m = LoginMechanism()
        _ = m.step(.start(initialResponse: nil))
        guard case .failure(.failed(let user, _)) = m.step(.response([])) else { Issue.record("failure"); return }
        #expect(user == "")
    }

    @Test(arguments: [String(repeating: "u", count: 256)])
    func oversizedUserFails(user: String) {
        var m = LoginMechanism()
        guard case .failure = m.step(.start(initialResponse: bytes(user))) else { Issue.record("failure"); return }
    }

    @Test func cannotSkipPassword() {
        var m = LoginMechanism()
        _ = m.step(.start(initialResponse: bytes("u")))
        guard case .failure = m.step(.verified) else { Issue.record("failure"); return }
    }
}

@Suite struct MechanismFlagTests {
    @Test func dovecotOrder() {
        let all: MechanismFlags = [.mutualAuth, .plaintext, .private, .active, .dictionary, .anonymous, .forwardSecrecy]
        #expect(all.words == ["private", "anonymous", "plaintext", "dictionary", "active", "forward-secrecy", "mutual-auth"])
        #expect(MechanismDescriptor.plain.flags.words == ["plaintext"])
        #expect(MechanismDescriptor.login.flags.words == ["plaintext"])
    }
}

@Suite struct AnonymousMechanismTests {
    @Test(arguments: [("", true), ("trace@example.org", true), (String(repeating: "é", count: 255), true),
                      (String(repeating: "a", count: 256), false)])
    func traceBounds(trace: String, ok: Bool) {
        var m = AnonymousMechanism()
        let step = m.step(.start(initialResponse: Array(trace.utf8)))
        if case .success = step { #expect(ok) } else { #expect(!ok) }
    }

    @Test func invalidUTF8Fails() {
        var m = AnonymousMechanism()
        guard case .failure = m.step(.start(initialResponse: [0xFF, 0xFE])) else { Issue.record("expected failure"); return }
    }
}
