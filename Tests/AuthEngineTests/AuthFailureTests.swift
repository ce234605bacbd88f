import AuthCore
import AuthProtocol
@testable import AuthEngine
import Logging
import Passdb
import SASL
import Testing

/// The one mapping of outcomes to the wire: each passdb answer, credential lookup and engine refusal
/// to its exact FAIL line, its log reason and how it is answered.
@Suite struct AuthFailureTests {
    static func line(_ failure: AuthFailure, user: String? = "u@example.org", passdb: String? = "memory:x", debug: Bool = false) -> String {
        String(decoding: failure.reply(id: 7, user: user, passdb: passdb, debug: debug).encoded(), as: UTF8.self)
    }

    /// What one outcome must look like.
    struct Expected: Sendable {
        var wire: String
        var log: String
        var kind: AuthFailure.Kind = .authentication
    }

    @Test(arguments: [
        (PassdbResult.passwordMismatch, Expected(wire: "FAIL\t7\tuser=u@example.org\n", log: "password mismatch")),
        (.userUnknown, Expected(wire: "FAIL\t7\tuser=u@example.org\n", log: "unknown user")),
        (.userDisabled(reason: nil), Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=user_disabled\n", log: "user disabled")),
        (.userDisabled(reason: "locked by admin"),
         Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=user_disabled\n", log: "user disabled: locked by admin")),
        (.passwordExpired,
         Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=pass_expired\treason=Password expired\n", log: "password expired")),
        (.schemeNotAvailable("unknown scheme {FOO}"),
         Expected(wire: "FAIL\t7\tuser=u@example.org\n", log: "cannot verify the stored password: unknown scheme {FOO}")),
        (.internalFailure("db down"),
         Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=temp_fail\ttemp\n", log: "internal failure: db down", kind: .temporary)),
    ])
    func passdbAnswers(result: PassdbResult, expected: Expected) throws {
        let failure = try #require(AuthFailure.passdb(result))
        #expect(Self.line(failure) == expected.wire)
        #expect(failure.logReason == expected.log)
        #expect(failure.kind == expected.kind)
    }

    @Test func aRightPasswordOrAFoundCredentialIsNoFailure() throws {
        #expect(AuthFailure.passdb(.ok) == nil)
        let found = try AuthFailure.credentials(.found(.cramMD5Context(Secret(Array(repeating: 7, count: 32)))), scheme: .cramMD5).get()
        guard case .cramMD5Context = found else {
            Issue.record("the found credential is handed on as it is: \(found)")
            return
        }
    }

    @Test(arguments: [
        (CredentialLookup.userUnknown, Expected(wire: "FAIL\t7\tuser=u@example.org\n", log: "unknown user")),
        (.userDisabled(reason: nil), Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=user_disabled\n", log: "user disabled")),
        (.userDisabled(reason: "locked"),
         Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=user_disabled\n", log: "user disabled: locked")),
        (.schemeNotAvailable("stored as SHA512-CRYPT"),
         Expected(
            wire: "FAIL\t7\tuser=u@example.org\n",
            log: "no CRAM-MD5 secret stored for this user (stored as SHA512-CRYPT); store one or use another mechanism")),
        (.internalFailure("sqlite busy"),
         Expected(wire: "FAIL\t7\tuser=u@example.org\tcode=temp_fail\ttemp\n", log: "internal failure: sqlite busy", kind: .temporary)),
    ])
    func credentialLookups(lookup: CredentialLookup, expected: Expected) {
        guard case .failure(let failure) = AuthFailure.credentials(lookup, scheme: .cramMD5) else {
            Issue.record("\(lookup) is a failure")
            return
        }
        #expect(Self.line(failure) == expected.wire)
        #expect(failure.logReason == expected.log)
        #expect(failure.kind == expected.kind)
    }

    @Test func mechanismAndNameFailures() {
        let malformed = AuthFailure.mechanism(.malformed("PLAIN message must have exactly two NUL separators"))
        #expect(malformed.kind == .authentication)
        #expect(malformed.logReason == "PLAIN message must have exactly two NUL separators")
        #expect(Self.line(malformed, user: nil) == "FAIL\t7\n")
        let failed = AuthFailure.mechanism(.failed(user: "u", reason: "proof mismatch"))
        #expect(failed.logReason == "proof mismatch")
        #expect(Self.line(failed) == "FAIL\t7\tuser=u@example.org\n")
        #expect(AuthFailure.nulInClientData.logReason == "NUL byte in client data")
        #expect(AuthFailure.nulInClientData.kind == .authentication)
        let name = AuthFailure.nameRefused(.disallowedCharacter)
        #expect(name.logReason == "user name contains a character not in username_chars")
        #expect(Self.line(name, user: "te st") == "FAIL\t7\tuser=te st\n")
        let authz = AuthFailure.authorizationRefused(authzid: "boss\u{1b}[2J")
        #expect(authz.kind == .authentication)
        #expect(authz.logReason.hasPrefix("authorization identity boss?[2J differs from the authentication identity"))
        #expect(Self.line(authz) == "FAIL\t7\tuser=u@example.org\n")
    }

    /// Refusals go out at once, without the debug fields, and name the user only for a user's cool-down.
    @Test(arguments: [
        (AuthFailure.invalidBase64InInitialResponse,
         Expected(
            wire: "FAIL\t7\tcode=invalid_base64\treason=Invalid base64 data in initial response\n",
            log: "invalid base64 in initial response", kind: .refusal(namesUser: false))),
        (.invalidBase64InContinuation,
         Expected(
            wire: "FAIL\t7\tcode=invalid_base64\treason=Invalid base64 data in continued response\n",
            log: "invalid base64 in continued response", kind: .refusal(namesUser: false))),
        (.unexpectedContinuation,
         Expected(wire: "FAIL\t7\treason=Unexpected continuation\n", log: "unexpected continuation", kind: .refusal(namesUser: false))),
        (.blockedAddress,
         Expected(
            wire: "FAIL\t7\treason=Too many failed authentication attempts; try again later\n",
            log: "blocked: too many failures from this IP (penalty_cooldown)", kind: .refusal(namesUser: false))),
        (.blockedUser,
         Expected(
            wire: "FAIL\t7\tuser=u@example.org\treason=Too many failed authentication attempts; try again later\n",
            log: "blocked: too many failures for this user from this IP (penalty_cooldown)", kind: .refusal(namesUser: true))),
        (.cleartextWithoutTLS,
         Expected(
            wire: "FAIL\t7\treason=Plaintext authentication disallowed on non-secure (SSL/TLS) connections\n",
            log: "cleartext mechanism on a connection without TLS (cleartext_requires_tls)", kind: .refusal(namesUser: false))),
    ])
    func refusals(failure: AuthFailure, expected: Expected) {
        #expect(Self.line(failure, debug: true) == expected.wire)
        #expect(failure.logReason == expected.log)
        #expect(failure.kind == expected.kind)
    }

    /// With `debug` (doveadm, `saslgate auth test --explain`) a counted or temporary failure names the
    /// passdb that answered; without one known, nothing is added.
    @Test func debugNamesThePassdb() throws {
        let mismatch = try #require(AuthFailure.passdb(.passwordMismatch))
        #expect(Self.line(mismatch, debug: true) == "FAIL\t7\tuser=u@example.org\tpassdb=memory:x\n")
        #expect(Self.line(mismatch, passdb: nil, debug: true) == "FAIL\t7\tuser=u@example.org\n")
        let down = try #require(AuthFailure.passdb(.internalFailure("x")))
        #expect(Self.line(down, debug: true) == "FAIL\t7\tuser=u@example.org\tcode=temp_fail\tpassdb=memory:x\ttemp\n")
    }

    @Test func repliesWithoutAPendingRequest() {
        #expect(String(decoding: AuthFailure.unknownRequest(id: 9).encoded(), as: UTF8.self)
            == "FAIL\t9\treason=Authentication request timed out\n")
        #expect(String(decoding: AuthFailure.tooManyRequests(id: 9).encoded(), as: UTF8.self)
            == "FAIL\t9\tcode=temp_fail\treason=Too many pending authentication requests\n")
    }
}

/// The same mapping seen through a session: the FAIL line the client gets and the line the log gets.
@Suite struct FailureThroughTheSessionTests {
    /// What the client and the log must see for one passdb answer.
    struct Seen: Sendable {
        var wire: String
        var log: String
        var delayed = true
    }

    @Test(arguments: [
        (PassdbResult.passwordMismatch, Seen(wire: "FAIL\t1\tuser=x@example.org", log: "password mismatch")),
        (.userUnknown, Seen(wire: "FAIL\t1\tuser=x@example.org", log: "unknown user")),
        (.userDisabled(reason: "locked"), Seen(wire: "FAIL\t1\tuser=x@example.org\tcode=user_disabled", log: "user disabled: locked")),
        (.passwordExpired,
         Seen(wire: "FAIL\t1\tuser=x@example.org\tcode=pass_expired\treason=Password expired", log: "password expired")),
        (.schemeNotAvailable("unknown scheme"),
         Seen(wire: "FAIL\t1\tuser=x@example.org", log: "cannot verify the stored password: unknown scheme")),
        (.internalFailure("db down"),
         Seen(wire: "FAIL\t1\tuser=x@example.org\tcode=temp_fail\ttemp", log: "internal failure: db down", delayed: false)),
    ])
    func passdbOutcome(result: PassdbResult, seen: Seen) async throws {
        let io = FakeIO()
        let log = RecordingRequestLog()
        let db = MemoryPassdb(name: "memory:forced", users: [:], forced: ["x@example.org": result])
        let service = try AuthService(
            settings: testSettings(), chain: PassdbChain([db]), hostname: "h",
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }), requestLog: log)
        let s = makeSession(service, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.1\tresp=" + DovecotBase64.encode(Array("\0x\0pw".utf8)))
        await io.drain()
        #expect(io.take() == (seen.delayed ? [] : [seen.wire]))
        await io.advance(by: 2.5)
        #expect(io.take() == (seen.delayed ? [seen.wire] : []))
        let record = try #require(log.records.first)
        #expect(log.records.count == 1)
        #expect(record.result == "failed")
        #expect(record.reason == seen.log)
        #expect(record.user == "x@example.org")
        // The chain names no passdb when none knew the user.
        #expect(record.passdb == (result == .userUnknown ? nil : "memory:forced"))
        #expect(record.delayMS == (seen.delayed ? 2000 : nil))
        #expect(record.cpid == 42)
    }
}
