import AuthConfig
import AuthCore
import AuthProtocol
import Logging
import Passdb
import Testing

@testable import AuthEngine

/// A passdb with a main password and app passwords (by password → name), as the sasldb store answers.
private struct AppPassdb: PasswordDatabase {
    var name = "apps:test"
    var driver = "apps"
    var capabilities = PassdbCapabilities(verifyPlain: true)
    var main: [String: String]
    var apps: [String: String]

    func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        await verifyPlainVerdict(request, password: password).result
    }

    func verifyPlainVerdict(_ request: PassdbRequest, password: Secret) async -> PassdbVerdict {
        guard let stored = main[request.user] else { return PassdbVerdict(.userUnknown) }
        if password.constantTimeEquals(Array(stored.utf8)) { return PassdbVerdict(.ok) }
        for (secret, app) in apps where password.constantTimeEquals(Array(secret.utf8)) { return PassdbVerdict(.ok, appPassword: app) }
        return PassdbVerdict(.passwordMismatch)
    }

    func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup { .userUnknown }
}

/// `app=NAME` in the OK line and the log, and `require_app_passwords`.
@Suite struct AppPasswordEngineTests {
    struct Run {
        var wire: [String]
        var record: AuthLogRecord?
    }

    static func run(
        _ password: String, service: String = "smtp", user: String = "alice@example.org", apps: [String: String] = ["app-secret": "phone"],
        configure: (inout Settings) -> Void = { _ in }
    ) async throws -> Run {
        let io = FakeIO()
        let log = RecordingRequestLog()
        let db = AppPassdb(main: ["alice@example.org": "main-secret", "bob@example.net": "main-secret"], apps: apps)
        let auth = try AuthService(
            settings: testSettings(configure), chain: PassdbChain([db]), hostname: "h",
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }), requestLog: log)
        let s = makeSession(auth, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tPLAIN\tservice=\(service)\tsecured\trip=192.0.2.1\tresp=" + DovecotBase64.encode(Array("\0\(user)\0\(password)".utf8)))
        await io.drain()
        await io.advance(by: 2.5)
        return Run(wire: io.take(), record: log.records.first)
    }

    @Test func okNamesTheAppPasswordNeverTheSecret() async throws {
        let r = try await Self.run("app-secret")
        #expect(r.wire == ["OK\t1\tuser=alice@example.org\tapp=phone"])
        #expect(r.record?.app == "phone")
        var line: [UInt8] = []
        r.record?.appendFields(to: &line)
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.contains(" passdb=apps:test app=phone duration_ms="))
        #expect(!text.contains("app-secret"))
        let main = try await Self.run("main-secret")
        #expect(main.wire == ["OK\t1\tuser=alice@example.org"])
        #expect(main.record?.app == nil)
    }

    /// The name is tab-escaped in the OK line.
    @Test func appNameIsEscapedOnTheWire() async throws {
        let r = try await Self.run("app-secret", apps: ["app-secret": "a\tb\\c"])
        #expect(r.wire == ["OK\t1\tuser=alice@example.org\tapp=a\u{01}tb\\c"], "Dovecot's tab escaping: TAB is \\001t")
    }

    @Test func requireAppPasswordsRefusesTheMainPasswordForSMTP() async throws {
        let refused = try await Self.run("main-secret") { $0.requireAppPasswords = .all }
        #expect(refused.wire == ["FAIL\t1\tuser=alice@example.org"], "answered like a wrong password")
        #expect(refused.record?.reason == "main password refused: require_app_passwords")
        #expect(refused.record?.delayMS == 2000)
        let submission = try await Self.run("main-secret", service: "submission") { $0.requireAppPasswords = .all }
        #expect(submission.wire == ["FAIL\t1\tuser=alice@example.org"])
        let imap = try await Self.run("main-secret", service: "imap") { $0.requireAppPasswords = .all }
        #expect(imap.wire == ["OK\t1\tuser=alice@example.org"])
        let app = try await Self.run("app-secret") { $0.requireAppPasswords = .all }
        #expect(app.wire == ["OK\t1\tuser=alice@example.org\tapp=phone"])
    }

    @Test func requireAppPasswordsPerRealm() async throws {
        let configure: (inout Settings) -> Void = { $0.requireAppPasswords = .realms(["example.net"]) }
        let org = try await Self.run("main-secret", configure: configure)
        #expect(org.wire == ["OK\t1\tuser=alice@example.org"])
        let net = try await Self.run("main-secret", user: "bob@example.net", configure: configure)
        #expect(net.wire == ["FAIL\t1\tuser=bob@example.net"])
    }

    @Test func parsesTheConfigForms() {
        #expect(AppPasswordRequirement.parse("no").0 == .no)
        #expect(AppPasswordRequirement.parse("yes").0 == .all)
        #expect(AppPasswordRequirement.parse("Example.org example.net").0 == .realms(["example.org", "example.net"]))
        #expect(!AppPasswordRequirement.parse("yes example.org").1.isEmpty)
        #expect(!AppPasswordRequirement.parse("user@example.org").1.isEmpty)
        #expect(AppPasswordRequirement.all.refusesMainPassword(realm: nil, service: "SMTP"))
        #expect(!AppPasswordRequirement.all.refusesMainPassword(realm: nil, service: "imap"))
    }
}
