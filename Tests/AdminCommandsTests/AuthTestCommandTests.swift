import AuthCore
import AuthProtocol
import Testing

@testable import AdminCommands

@Suite("saslgate auth test")
struct AuthTestCommandTests {
    static let password = "c0rrect-h0rse"

    /// Base64 of the PLAIN response, which must never be printed either.
    static var plainResponseBase64: String {
        DovecotBase64.encode([0] + Array("bob@example.com".utf8) + [0] + Array(password.utf8))
    }

    func server(_ dir: TempDir, _ behavior: FakeAuthServer.Behavior = .normal) -> FakeAuthServer {
        FakeAuthServer(path: dir.file("auth"), user: "bob@example.com", password: Self.password, behavior: behavior)
    }

    func assertNoSecret(_ r: CLIResult) {
        #expect(!r.all.contains(Self.password))
        #expect(!r.all.contains(Self.plainResponseBase64))
        #expect(!r.all.contains(DovecotBase64.encode(Array(Self.password.utf8))))
    }

    @Test func parsesOptions() throws {
        let t = try #require(
            try SaslgateCommand.parseAsRoot([
                "auth", "test", "--socket", "/s", "--mech", "LOGIN", "--rip", "192.0.2.7", "--service", "submission",
                "--secured", "--password-stdin", "bob",
            ])
                as? AuthTestCommand
        )
        let r = try t.makeRequest()
        #expect(
            r.socketPath == "/s" && r.mechanism == .login && r.remoteIP == "192.0.2.7" && r.service == "submission"
                && r.secured)
        #expect(r.user == "bob" && t.passwordStdin)
        #expect(r.timeout == .seconds(15))
        let d = try #require(try SaslgateCommand.parseAsRoot(["auth", "test", "bob"]) as? AuthTestCommand)
        #expect(d.socket == nil && d.mech == .plain && d.service == "smtp" && !d.secured)
    }

    @Test func socketFromTheConfiguration() throws {
        let dir = TempDir()
        let config = dir.write("saslgated.conf", "listen = run/auth\n")
        let t = try #require(
            try SaslgateCommand.parseAsRoot(["auth", "test", "-c", config, "bob"]) as? AuthTestCommand)
        #expect(try t.socketPath() == dir.file("run/auth"))
        let unset = dir.write("empty.conf", "# nothing\n")
        let u = try #require(try SaslgateCommand.parseAsRoot(["auth", "test", "-c", unset, "bob"]) as? AuthTestCommand)
        #expect(try u.socketPath() == "/var/spool/postfix/private/auth")
        let r = saslgate(["auth", "test", "-c", dir.file("missing.conf"), "--password-stdin", "bob"], stdin: "pw")
        #expect(r.code == 2)
    }

    @Test func plainSuccess() {
        let dir = TempDir()
        let s = server(dir)
        defer { s.stop() }
        let r = saslgate(
            [
                "auth", "test", "--socket", s.path, "--rip", "192.0.2.7", "--secured", "--password-stdin",
                "bob@example.com",
            ],
            stdin: Self.password
        )
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out == "auth succeeded: user=bob@example.com")
        assertNoSecret(r)
        let lines = s.lines
        #expect(lines.first == "VERSION\t1\t2")
        #expect(lines.dropFirst().first?.hasPrefix("CPID\t") == true)
        #expect(
            lines.dropFirst(2).first
                == "AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.7\tsecured\tresp=\(Self.plainResponseBase64)")
    }

    @Test func plainFailureExit1() {
        let dir = TempDir()
        let s = server(dir)
        defer { s.stop() }
        let r = saslgate(
            ["auth", "test", "--socket", s.path, "--password-stdin", "bob@example.com"], stdin: "wrong-password")
        #expect(r.code == 1)
        #expect(r.out == "auth failed: user=bob@example.com code=authfail reason=Password mismatch")
        #expect(!r.all.contains("wrong-password"))
    }

    @Test func loginAnswersTheTwoPrompts() {
        let dir = TempDir()
        let s = server(dir)
        defer { s.stop() }
        let r = saslgate(
            ["auth", "test", "--socket", s.path, "--mech", "login", "--password-stdin", "bob@example.com"],
            stdin: Self.password)
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out == "auth succeeded: user=bob@example.com")
        assertNoSecret(r)
        #expect(s.lines.dropFirst(2).first == "AUTH\t1\tLOGIN\tservice=smtp")
        #expect(s.lines.count == 5)
    }

    @Test func asksOnTheTerminalOnce() {
        let dir = TempDir()
        let s = server(dir)
        defer { s.stop() }
        let terminal = FakeTerminal(tty: [Self.password])
        let code = CommandIO.$current.withValue(terminal.io) {
            SaslgateMain.run(arguments: ["auth", "test", "--socket", s.path, "bob@example.com"])
        }
        #expect(code == 0)
        #expect(terminal.prompts == ["Password: "])
    }

    /// `echo PASSWORD | saslgate auth test USER` (the README's quick start in a script): standard input
    /// that is not a terminal gives the password without --password-stdin, and no prompt is shown.
    @Test func aPipedPasswordNeedsNoFlag() {
        let dir = TempDir()
        let s = server(dir)
        defer { s.stop() }
        let terminal = FakeTerminal(stdin: [Self.password])
        var io = terminal.io
        io.standardInputIsTerminal = { false }
        let code = CommandIO.$current.withValue(io) {
            SaslgateMain.run(arguments: ["auth", "test", "--socket", s.path, "bob@example.com"])
        }
        #expect(code == 0)
        #expect(terminal.prompts.isEmpty)
        #expect(terminal.out == "auth succeeded: user=bob@example.com")
    }

    @Test func missingSocketExit2() {
        let dir = TempDir()
        let r = saslgate(
            ["auth", "test", "--socket", dir.file("none"), "--password-stdin", "bob"], stdin: Self.password)
        #expect(r.code == 2)
        #expect(
            r.err
                == "saslgate: \(dir.file("none")) does not exist; is saslgated running? (give the socket with --socket PATH)"
        )
        assertNoSecret(r)
    }

    @Test func mechanismNotOfferedExit2() {
        let dir = TempDir()
        let s = server(dir, .plainOnly)
        defer { s.stop() }
        let r = saslgate(
            ["auth", "test", "--socket", s.path, "--mech", "login", "--password-stdin", "bob"], stdin: Self.password)
        #expect(r.code == 2)
        #expect(r.err.contains("does not offer LOGIN (it offers: PLAIN)"))
    }

    @Test func silentServerTimesOut() {
        let dir = TempDir()
        let s = server(dir, .silent)
        defer { s.stop() }
        let request = AuthTestRequest(socketPath: s.path, user: "bob", timeout: .milliseconds(300))
        let start = ContinuousClock.now
        #expect(throws: CLIError.self) { try AuthClient.run(request, password: Secret(Self.password)) }
        #expect(ContinuousClock.now - start < .seconds(5))
        do {
            _ = try AuthClient.run(
                AuthTestRequest(socketPath: s.path, user: "bob", timeout: .milliseconds(100)), password: Secret("x"))
        } catch {
            #expect(error.exitCode == 2)
        }
    }

    @Test func summaryLinesAreSanitized() {
        #expect(AuthTestOutcome.failed(user: "a\u{1}b", code: nil, reason: nil).summary == "auth failed: user=a?b")
        #expect(
            AuthTestOutcome.failed(user: "u", code: "temp_fail", reason: nil).summary
                == "auth failed: user=u code=temp_fail")
    }
}
