import PassdbTestSupport
import AuthCore
import AuthConfig
import AuthEngine
import AuthProtocol
import Passdb
import PassdbRegistry
import Logging
import Testing

// base64("\0test\0testpass"), base64("\0test\0wrong"), base64("test"), base64("testpass")
private let plainGood = "AHRlc3QAdGVzdHBhc3M="
private let plainBad = "AHRlc3QAd3Jvbmc="
private let b64test = "dGVzdA=="
private let b64testpass = "dGVzdHBhc3M="

@Suite struct HandshakeTests {
    @Test func greetingOrderAndContent() throws {
        let io = FakeIO()
        let session = makeSession(try makeService(), io: io)
        let greeting = String(decoding: session.greeting(identity: ServerIdentity(pid: 77, randomBytes: { Array(repeating: 0xab, count: $0) })), as: UTF8.self)
        #expect(greeting == "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t77\nCUID\t1\nCOOKIE\t" + String(repeating: "ab", count: 16) + "\nDONE\n")
    }

    @Test func requiresVersionThenCPID() throws {
        let service = try makeService()
        #expect(throws: ProtocolViolation.self) { try makeSession(service, io: FakeIO()).feed("CPID\t1") }
        #expect(throws: ProtocolViolation.incompatibleMajor(2)) { try makeSession(service, io: FakeIO()).feed("VERSION\t2\t0") }
        let s = makeSession(service, io: FakeIO())
        try s.feed("VERSION\t1\t0")
        #expect(throws: ProtocolViolation.self) { try s.feed("AUTH\t1\tPLAIN\tservice=smtp") }
        let t = makeSession(service, io: FakeIO())
        try t.handshake()
        #expect(throws: ProtocolViolation.self) { try t.feed("VERSION\t1\t0") }
        #expect(throws: ProtocolViolation.self) { try t.feed("CPID\t5") }
    }
}

@Suite struct AuthFlowTests {
    @Test func plainWithInitialResponse() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured\tresp=\(plainGood)")
        await io.drain()
        #expect(io.take() == ["OK\t1\tuser=test@example.org"])
        #expect(s.pendingRequestCount == 0)
    }

    /// A passdb that answers without hashing ({PLAIN} entries) answers inside the read: the OK is out
    /// before `handle` returns, with no detached work, and a wrong password still waits out the delay.
    @Test func cheapChecksAnswerWithinTheRead() async throws {
        let io = FakeIO()
        let db = InstantPassdb("instant", users: ["test@example.org": "testpass"])
        let s = makeSession(try makeService(passdbs: [db]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=\(plainGood)")
        #expect(io.take() == ["OK\t1\tuser=test@example.org"])
        #expect(s.pendingRequestCount == 0)
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=\(plainBad)")
        #expect(io.take() == [])
        await io.advance(by: 3)
        #expect(io.take() == ["FAIL\t2\tuser=test@example.org"])
    }

    @Test func plainWithoutInitialResponse() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t3\tplain\tservice=smtp\tsecured")
        #expect(io.take() == ["CONT\t3\t"])
        try s.feed("CONT\t3\t\(plainGood)")
        await io.drain()
        #expect(io.take() == ["OK\t3\tuser=test@example.org"])
    }

    @Test func eximEmptyRespMeansNoInitialResponse() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake(minor: 0)
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=")
        #expect(io.take() == ["CONT\t1\t"])
    }

    @Test func emptyRespFromMinor2IsEmptyResponseAndFails() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake(minor: 2)
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=")
        await io.drain()
        #expect(io.take() == [])  // delayed
        await io.advance(by: 2.6)
        #expect(io.take() == ["FAIL\t1"])
    }

    @Test func loginTwoSteps() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t4\tLOGIN\tservice=smtp\tsecured")
        #expect(io.take() == ["CONT\t4\tVXNlcm5hbWU6"])
        try s.feed("CONT\t4\t\(b64test)")
        #expect(io.take() == ["CONT\t4\tUGFzc3dvcmQ6"])
        try s.feed("CONT\t4\t\(b64testpass)")
        await io.drain()
        #expect(io.take() == ["OK\t4\tuser=test@example.org"])
    }

    @Test func wrongPasswordIsDelayedAndCarriesUser() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=\(plainBad)")
        await io.drain()
        await io.advance(by: 1.9)
        #expect(io.take() == [])
        await io.advance(by: 0.7)
        #expect(io.take() == ["FAIL\t2\tuser=test@example.org"])
    }

    @Test func failureDelayZeroAnswersAtOnce() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.failureDelay = 0 }, io: io)
        try s.handshake()
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=\(plainBad)")
        await io.drain()
        #expect(io.take() == ["FAIL\t2\tuser=test@example.org"])
    }

    @Test func cleartextWithoutTLSFailsImmediatelyWithReason() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tresp=\(plainGood)")
        #expect(io.take() == ["FAIL\t1\treason=Plaintext authentication disallowed on non-secure (SSL/TLS) connections"])
        let io2 = FakeIO()
        let t = makeSession(try makeService { $0.cleartextRequiresTLS = false }, io: io2)
        try t.handshake()
        try t.feed("AUTH\t1\tPLAIN\tservice=smtp\tresp=\(plainGood)")
        await io2.drain()
        #expect(io2.take() == ["OK\t1\tuser=test@example.org"])
    }

    @Test func bareNameGetsDefaultRealmAndNoRealmStaysBare() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.defaultRealm = nil; $0.failureDelay = 0 }, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0bob\0bobpass".utf8)))
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0test@EXAMPLE.org\0testpass".utf8)))
        await io.drain()
        #expect(Set(io.take()) == ["OK\t1\tuser=bob", "OK\t2\tuser=test@example.org"])
    }

    @Test func authzidDifferentFromAuthcidFails() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.failureDelay = 0 }, io: io)
        try s.handshake()
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("other\0test\0testpass".utf8)))
        await io.drain()
        #expect(io.take() == ["FAIL\t2\tuser=test@example.org"])
        // authzid equal to the authcid is ignored (what doveadm 2.3 sends)
        try s.feed("AUTH\t3\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("test\0test\0testpass".utf8)))
        await io.drain()
        #expect(io.take() == ["OK\t3\tuser=test@example.org"])
    }

    @Test(arguments: [
        (PassdbResult.internalFailure("db down"), "FAIL\t1\tuser=x@example.org\tcode=temp_fail\ttemp"),
        (.userDisabled(reason: nil), "FAIL\t1\tuser=x@example.org\tcode=user_disabled"),
        (.passwordExpired, "FAIL\t1\tuser=x@example.org\tcode=pass_expired\treason=Password expired"),
        (.schemeNotAvailable("unknown scheme"), "FAIL\t1\tuser=x@example.org"),
    ])
    func passdbOutcomesMapToCodes(result: PassdbResult, expected: String) async throws {
        let io = FakeIO()
        let db = MemoryPassdb(users: [:], forced: ["x@example.org": result])
        let s = makeSession(try makeService({ $0.failureDelay = 0 }, passdbs: [db]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0x\0pw".utf8)))
        await io.drain()
        #expect(io.take() == [expected])
    }

    @Test(arguments: [PassdbSpec.ChainAction.continue, .return])
    func chainFollowsDovecotRules(onFailure: PassdbSpec.ChainAction) async throws {
        let io = FakeIO()
        let first = MemoryPassdb(name: "memory:first", users: ["a@example.org": "pa"])
        let second = MemoryPassdb(name: "memory:second", users: ["a@example.org": "other", "b@example.org": "pb"])
        let chain = PassdbChain([.init(first, resultFailure: onFailure), .init(second)])
        var settings = Settings()
        settings.failureDelay = 0
        settings.defaultRealm = "example.org"
        let service = try AuthService(settings: settings, chain: chain, hostname: "h", logger: .init(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        let s = makeSession(service, io: io)
        try s.handshake()
        func auth(_ id: Int, _ u: String, _ p: String) throws {
            try s.feed("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0\(u)\0\(p)".utf8)))
        }
        try auth(1, "a", "pa")  // first answers
        try auth(2, "b", "pb")  // unknown in first -> second
        try auth(3, "a", "other")  // wrong in first: Dovecot's default goes on; result_failure=return stops
        try auth(4, "a", "neither")
        await io.drain()
        let third = onFailure == .continue ? "OK\t3\tuser=a@example.org" : "FAIL\t3\tuser=a@example.org"
        #expect(Set(io.take()) == ["OK\t1\tuser=a@example.org", "OK\t2\tuser=b@example.org", third, "FAIL\t4\tuser=a@example.org"])
    }

    @Test func internalFailureAnywhereWithoutSuccessIsTemporary() async throws {
        let io = FakeIO()
        let broken = MemoryPassdb(name: "memory:down", users: [:], forced: ["a@example.org": .internalFailure("db down")])
        let good = MemoryPassdb(name: "memory:up", users: ["a@example.org": "pa"])
        let s = makeSession(try makeService({ $0.failureDelay = 0 }, passdbs: [broken, good]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0a\0pa".utf8)))
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0a\0wrong".utf8)))
        await io.drain()
        #expect(Set(io.take()) == ["OK\t1\tuser=a@example.org", "FAIL\t2\tuser=a@example.org\tcode=temp_fail\ttemp"])
    }

    @Test func realmPolicyAndLowercasing() async throws {
        let io = FakeIO()
        let db = MemoryPassdb(users: ["test@example.org": "testpass", "x@other.org": "x"])
        let s = makeSession(try makeService({ $0.failureDelay = 0; $0.realms = ["example.org"]; $0.usernameLowercase = true }, passdbs: [db]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0TeSt@Example.ORG\0testpass".utf8)))
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\0x@other.org\0x".utf8)))
        await io.drain()
        #expect(Set(io.take()) == ["OK\t1\tuser=test@example.org", "FAIL\t2\tuser=x@other.org"])
    }
}

@Suite struct BadInputTests {
    @Test func unknownMechanismAndDuplicateIDCloseTheConnection() throws {
        let s = makeSession(try makeService(), io: FakeIO())
        try s.handshake()
        #expect(throws: ProtocolViolation.unknownMechanism("CRAM-MD5")) { try s.feed("AUTH\t1\tCRAM-MD5\tservice=smtp") }
        let t = makeSession(try makeService(), io: FakeIO())
        try t.handshake()
        try t.feed("AUTH\t1\tLOGIN\tservice=smtp\tsecured")
        #expect(throws: ProtocolViolation.duplicateID(1)) { try t.feed("AUTH\t1\tLOGIN\tservice=smtp\tsecured") }
    }

    @Test func invalidBase64GetsImmediateFail() throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=AHRlc3QAdGVzdHBhc3M")
        #expect(io.take() == ["FAIL\t1\tcode=invalid_base64\treason=Invalid base64 data in initial response"])
        try s.feed("AUTH\t2\tLOGIN\tservice=smtp\tsecured")
        _ = io.take()
        try s.feed("CONT\t2\t!!!!")
        #expect(io.take() == ["FAIL\t2\tcode=invalid_base64\treason=Invalid base64 data in continued response"])
        // the request is gone; the connection stays usable
        try s.feed("CONT\t2\tdGVzdA==")
        #expect(io.take() == ["FAIL\t2\treason=Authentication request timed out"])
    }

    @Test func strayAndUnexpectedContinuations() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("CONT\t99\tAAAA")
        #expect(io.take() == ["FAIL\t99\treason=Authentication request timed out"])
        // CONT while the passdb is still working
        try s.feed("AUTH\t5\tPLAIN\tservice=smtp\tsecured\tresp=\(plainGood)")
        try s.feed("CONT\t5\tAAAA")
        #expect(io.take() == ["FAIL\t5\treason=Unexpected continuation"])
        await io.drain()
        #expect(io.take() == [])  // the late passdb answer is discarded
    }

    @Test func contDuringFailureDelayGetsTimedOutThenRealFail() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=\(plainBad)")
        await io.drain()
        try s.feed("CONT\t2\tAAAA")
        #expect(io.take() == ["FAIL\t2\treason=Authentication request timed out"])
        await io.advance(by: 3)
        #expect(io.take() == ["FAIL\t2\tuser=test@example.org"])
    }

    @Test func cancelAndReuseOfIDs() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService(), io: io)
        try s.handshake()
        try s.feed("AUTH\t5\tLOGIN\tservice=smtp\tsecured")
        try s.feed("CANCEL\t5")
        try s.feed("CANCEL\t77")  // unknown: ignored
        try s.feed("AUTH\t5\tPLAIN\tservice=smtp\tsecured\tresp=\(plainGood)")
        await io.drain()
        #expect(io.take() == ["CONT\t5\tVXNlcm5hbWU6", "OK\t5\tuser=test@example.org"])
    }

    @Test func abandonedRequestsExpireSilently() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.requestTimeout = 150 }, io: io)
        try s.handshake()
        try s.feed("AUTH\t5\tLOGIN\tservice=smtp\tsecured")
        _ = io.take()
        await io.advance(by: 120)
        #expect(s.pendingRequestCount == 1)
        await io.advance(by: 60)
        #expect(s.pendingRequestCount == 0)
        #expect(io.take() == [])
        try s.feed("CONT\t5\tdGVzdA==")
        #expect(io.take() == ["FAIL\t5\treason=Authentication request timed out"])
    }

    @Test func pendingLimitEvictsOldestAbandonedRequest() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.maxPendingRequests = 3 }, io: io)
        try s.handshake()
        for id in 1...3 {
            try s.feed("AUTH\t\(id)\tLOGIN\tservice=smtp\tsecured")
            await io.advance(by: 1)
        }
        try s.feed("AUTH\t4\tLOGIN\tservice=smtp\tsecured")
        #expect(s.pendingRequestCount == 3)
        _ = io.take()
        try s.feed("CONT\t1\tdGVzdA==")  // the oldest was evicted
        #expect(io.take() == ["FAIL\t1\treason=Authentication request timed out"])
        try s.feed("CONT\t4\tdGVzdA==")
        #expect(io.take() == ["CONT\t4\tUGFzc3dvcmQ6"])
    }

    @Test(arguments: ["te st", "a/b", "a:b", "", "@example.org", "x@"])
    func disallowedNamesFail(name: String) async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.failureDelay = 0 }, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tLOGIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array(name.utf8)))
        if name.isEmpty {
            _ = io.take()
            try s.feed("CONT\t1\t")
        } else {
            _ = io.take()
            try s.feed("CONT\t1\t\(b64testpass)")
        }
        await io.drain()
        let out = io.take()
        #expect(out.count == 1)
        #expect(out.first?.hasPrefix("FAIL\t1") == true)
    }

    @Test func loginRejectsNULInData() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.failureDelay = 0 }, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tLOGIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("te\0st".utf8)))
        await io.drain()
        #expect(io.take() == ["FAIL\t1"])
    }
}

@Suite struct MechanismHonestyTests {
    struct NoPlain: PasswordDatabase {
        var name = "none:x"
        var driver = "none"
        var capabilities = PassdbCapabilities(verifyPlain: false)
        func verifyPlain(_ r: PassdbRequest, password: AuthCore.Secret) async -> PassdbResult { .userUnknown }
        func lookupCredentials(_ r: PassdbRequest, scheme: AuthCore.CredentialScheme) async -> CredentialLookup { .userUnknown }
    }

    @Test func refusesWhenNothingCanBeServed() {
        #expect(throws: ConfigErrors.self) { try makeService(passdbs: [NoPlain()]) }
    }

    @Test func unknownMechanismNameIsAConfigError() {
        #expect(throws: ConfigErrors.self) { try makeService { $0.mechanisms = ["PLAIN", "FOO"] } }
    }
}

@Suite struct MemoryBoundTests {
    @Test func delayedFailuresAreBounded() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService { $0.maxPendingRequests = 10 }, io: io)
        try s.handshake()
        for id in 1...25 {  // malformed PLAIN (one NUL): delayed failures without any passdb work
            try s.feed("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("a\0b".utf8)))
        }
        #expect(io.take().count == 15)  // everything beyond the bound of 10 went out early
        await io.advance(by: 3)
        #expect(io.take().count == 10)
    }
}

@Suite struct AuthzAndAnonymousTests {
    @Test func authzRuleLetsAnAuthcidActForOthers() async throws {
        let io = FakeIO()
        let db = MemoryPassdb(users: ["relay@example.org": "rpass", "test@example.org": "testpass"])
        let s = makeSession(try makeService({
            $0.failureDelay = 0
            $0.authzRules = [AuthzRule("relay@example.org=>*@example.org")!, AuthzRule("test@example.org=>boss@example.org")!]
        }, passdbs: [db]), io: io)
        try s.handshake()
        func auth(_ id: Int, _ zid: String, _ cid: String, _ pw: String) throws {
            try s.feed("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\tresp=" + DovecotBase64.encode(Array("\(zid)\0\(cid)\0\(pw)".utf8)))
        }
        try auth(1, "alice@example.org", "relay", "rpass")  // allowed: OK is the authzid
        try auth(2, "alice@other.org", "relay", "rpass")  // other realm: refused
        try auth(3, "alice@example.org", "relay", "wrong")  // the authcid's password is still checked
        try auth(4, "boss", "test", "testpass")  // exact rule, bare authzid normalized
        try auth(5, "alice", "test", "testpass")  // no rule for test => alice
        await io.drain()
        #expect(Set(io.take()) == [
            "OK\t1\tuser=alice@example.org", "FAIL\t2\tuser=relay@example.org", "FAIL\t3\tuser=relay@example.org",
            "OK\t4\tuser=boss@example.org", "FAIL\t5\tuser=test@example.org",
        ])
    }

    @Test func anonymousOnlyWhenExplicitlyEnabled() async throws {
        #expect(throws: ConfigErrors.self) {
            _ = try Settings.parse(text: "passdbs = passwd-file:/u\nmechanisms = plain anonymous\n", file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
        }
        let off = try makeService()
        #expect(!off.advertised.contains { $0.name == "ANONYMOUS" })
        let io = FakeIO()
        let on = try makeService { $0.mechanisms = ["PLAIN", "ANONYMOUS"]; $0.anonymousUsername = "anonymous" }
        #expect(on.advertised.last?.flags.words == ["anonymous"])
        let s = makeSession(on, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tANONYMOUS\tservice=smtp\tresp=dHJhY2VAeA==")
        await io.drain()
        #expect(io.take() == ["OK\t1\tuser=anonymous\tanonymous"])
    }
}
