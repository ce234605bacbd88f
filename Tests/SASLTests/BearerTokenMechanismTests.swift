import AuthCore
import SASL
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// OAUTHBEARER (RFC 7628) and XOAUTH2 as state machines: what goes to the passdb, the error challenge,
/// the dummy response and the FAIL, and the messages that fail at once.
@Suite struct BearerTokenMechanismTests {
    static let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"

    @Test func oauthBearerInitialResponseAsksForTokenCheck() {
        var m = OAuthBearerMechanism()
        let message = "n,a=alice@example.org,\u{1}host=mx.example.org\u{1}port=587\u{1}auth=Bearer \(Self.token)\u{1}\u{1}"
        guard case .verifyToken(let id, let token) = m.step(.start(initialResponse: bytes(message))) else {
            Issue.record("expected verifyToken"); return
        }
        #expect(id == MechanismIdentity(authcid: "alice@example.org"))
        #expect(token.constantTimeEquals(bytes(Self.token)))
        #expect("\(token)" == "<hidden>")
        guard case .success(nil) = m.step(.verified) else { Issue.record("expected success"); return }
    }

    @Test func oauthBearerRejectedTokenGetsJSONThenFails() {
        var m = OAuthBearerMechanism()
        _ = m.step(.start(initialResponse: bytes("n,a=alice,\u{1}auth=Bearer \(Self.token)\u{1}\u{1}")))
        guard case .challenge(let json) = m.step(.tokenRejected) else { Issue.record("expected challenge"); return }
        #expect(String(decoding: json, as: UTF8.self) == #"{"status":"invalid_token","schemes":"bearer","scope":"mail"}"#)
        guard case .failure(.failed(let user, _)) = m.step(.response([0x01])) else { Issue.record("expected failure"); return }
        #expect(user == "alice")
    }

    @Test func xoauth2RejectedTokenGetsJSONThenFails() {
        var m = XOAuth2Mechanism()
        guard case .verifyToken(let id, _) = m.step(.start(initialResponse: bytes("user=bob\u{1}auth=Bearer \(Self.token)\u{1}\u{1}")))
        else { Issue.record("expected verifyToken"); return }
        #expect(id.authcid == "bob")
        guard case .challenge(let json) = m.step(.tokenRejected) else { Issue.record("expected challenge"); return }
        #expect(String(decoding: json, as: UTF8.self) == #"{"status":"401","schemes":"bearer","scope":"mail"}"#)
        guard case .failure(.failed(let user, _)) = m.step(.response([])) else { Issue.record("expected failure"); return }
        #expect(user == "bob")
    }

    @Test func noInitialResponseGetsEmptyChallengeFirst() {
        var m = XOAuth2Mechanism()
        guard case .challenge(let c) = m.step(.start(initialResponse: nil)), c.isEmpty else {
            Issue.record("expected empty challenge"); return
        }
        guard case .verifyToken(let id, _) = m.step(.response(bytes("user=bob\u{1}auth=bearer \(Self.token)\u{1}\u{1}"))) else {
            Issue.record("expected verifyToken (scheme is case-insensitive)"); return
        }
        #expect(id.authcid == "bob")
    }

    @Test func gs2NameEscapesAreUndone() {
        var m = OAuthBearerMechanism()
        guard case .verifyToken(let id, _) = m.step(.start(initialResponse: bytes("y,a=a=2Cb=3Dc,\u{1}auth=Bearer abc\u{1}\u{1}"))) else {
            Issue.record("expected verifyToken"); return
        }
        #expect(id.authcid == "a,b=c")
    }

    @Test(arguments: [
        "n,,\u{1}auth=Bearer abc\u{1}\u{1}",  // no a=: the user is required, as by Dovecot
        "p=tls-unique,a=u,\u{1}auth=Bearer abc\u{1}\u{1}",  // channel binding
        "F,n,a=u,\u{1}auth=Bearer abc\u{1}\u{1}",  // non-standard GS2 flag
        "n,a=u\u{1}auth=Bearer abc\u{1}\u{1}",  // GS2 header without its final comma
        "n,a=u=2X,\u{1}auth=Bearer abc\u{1}\u{1}",  // bad escape
        "n,a=u,\u{1}auth=Basic abc\u{1}\u{1}",  // not a bearer token
        "n,a=u,\u{1}auth=Bearer a b\u{1}\u{1}",  // space inside the token
        "n,a=u,\u{1}auth=Bearer \u{1}\u{1}",  // empty token
        "n,a=u,\u{1}host=x\u{1}\u{1}",  // no auth=
        "n,a=u,\u{1}auth=Bearer a\u{1}auth=Bearer b\u{1}\u{1}",  // two tokens
        "n,a=u,",  // no kvsep at all
        "",  // an empty initial response (docs/PROTOCOL.md §2.2): no header
    ])
    func brokenOAuthBearerMessagesFailAtOnce(message: String) {
        var m = OAuthBearerMechanism()
        guard case .failure(.malformed) = m.step(.start(initialResponse: bytes(message))) else { Issue.record("expected malformed failure for \(message.debugDescription)"); return }
    }

    @Test(arguments: [
        "auth=Bearer abc\u{1}\u{1}",  // no user=
        "user=\u{1}auth=Bearer abc\u{1}\u{1}",  // empty user
        "user=a\u{1}user=b\u{1}auth=Bearer abc\u{1}\u{1}",  // two users
        "user=a\u{1}auth=Bearer\u{1}\u{1}",  // no token
        "user=a\u{1}auth=Bearer a\"b\u{1}\u{1}",  // a quote is not a b64token character
        "user=" + String(repeating: "u", count: 256) + "\u{1}auth=Bearer abc\u{1}\u{1}",  // user too long
    ])
    func brokenXOAuth2MessagesFailAtOnce(message: String) {
        var m = XOAuth2Mechanism()
        guard case .failure(.malformed) = m.step(.start(initialResponse: bytes(message))) else {
            Issue.record("expected malformed failure for \(message.debugDescription)"); return
        }
    }

    @Test func longTokensUpToTheLineLimitAreAccepted() {
        // A 16 KiB protocol line carries ~12 KiB of decoded data: such a token goes to the passdb.
        let token = String(repeating: "A", count: 11_000)
        var m = XOAuth2Mechanism()
        guard case .verifyToken(_, let secret) = m.step(.start(initialResponse: bytes("user=u\u{1}auth=Bearer \(token)\u{1}\u{1}"))) else {
            Issue.record("expected verifyToken"); return
        }
        #expect(secret.count == 11_000)
        var tooLong = XOAuth2Mechanism()
        let huge = "user=u\u{1}auth=Bearer " + String(repeating: "A", count: 13_000) + "\u{1}\u{1}"
        guard case .failure = tooLong.step(.start(initialResponse: bytes(huge))) else { Issue.record("expected failure"); return }
    }

    @Test func outOfOrderInputFails() {
        var m = OAuthBearerMechanism()
        guard case .failure = m.step(.verified) else { Issue.record("verified before start must fail"); return }
        var n = XOAuth2Mechanism()
        _ = n.step(.start(initialResponse: bytes("user=u\u{1}auth=Bearer abc\u{1}\u{1}")))
        guard case .failure = n.step(.response([])) else { Issue.record("a response while verifying must fail"); return }
    }

    @Test func descriptorsNeedATokenCheckAndArePlaintext() {
        for name in ["OAUTHBEARER", "xoauth2"] {
            let d = MechanismRegistry.descriptor(named: name)
            #expect(d?.need == .verifyToken)
            #expect(d?.flags == [.plaintext])
            #expect(d?.allowsNUL == false)
        }
    }
}
