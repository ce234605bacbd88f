import AuthCore
import CPAM
import Foundation
import Passdb
@testable import PassdbPAM
import Testing

@Suite("PAM options, names and mapping")
struct PAMOptionsTests {
    @Test func defaults() throws {
        let o = try PAMOptions.parse([])
        #expect(o == PAMOptions())
        #expect(o.stripRealm == .default)
        #expect(o.maxConcurrency == 8)
        #expect(o.maxQueue == 256)
        #expect(o.maxStuck == 8)
        #expect(o.timeout == .seconds(5))
        #expect(o.confDir == nil)
    }

    @Test func parsesEveryKey() throws {
        let o = try PAMOptions.parse([
            ("strip_realm", "all"), ("max_concurrency", "4"), ("max_queue", "10"), ("timeout", "1500ms"),
            ("confdir", "/tmp/pamconf"),
        ])
        #expect(o.stripRealm == .all)
        #expect(o.maxConcurrency == 4)
        #expect(o.maxStuck == 4)  // follows max_concurrency
        #expect(o.maxQueue == 10)
        #expect(o.timeout == .milliseconds(1500))
        #expect(o.confDir == "/tmp/pamconf")
        #expect(try PAMOptions.parse([("max_stuck", "0")]).maxStuck == 0)
        #expect(try PAMOptions.parse([(" STRIP_REALM ", " None ")]).stripRealm == .none)
    }

    @Test(arguments: [
        ("5s", Duration.seconds(5)), ("5", .seconds(5)), ("250ms", .milliseconds(250)), ("1.5s", .milliseconds(1500)),
        ("9s", .seconds(9)), ("10ms", .milliseconds(10)),
    ])
    func timeouts(text: String, expected: Duration) throws {
        #expect(try PAMOptions.parse([("timeout", text)]).timeout == expected)
    }

    @Test(arguments: ["10s", "1m", "0", "5ms", "-1s", "abc", "", "5 s s", "1e3ms"])
    func badTimeouts(text: String) {
        #expect(throws: PAMConfigError.self) { try PAMOptions.parse([("timeout", text)]) }
    }

    @Test func errorsNameTheProblem() {
        func message(_ pairs: [(String, String)]) -> String {
            do {
                _ = try PAMOptions.parse(pairs)
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(message([("colour", "blue")]).contains("unknown option 'colour'"))
        #expect(message([("colour", "blue")]).contains("strip_realm"))
        #expect(message([("timeout", "5s"), ("timeout", "4s")]).contains("more than once"))
        #expect(message([("strip_realm", "some")]).contains("expected default, all or none"))
        #expect(message([("max_concurrency", "0")]).contains("must be 1...256"))
        #expect(message([("max_concurrency", "x")]).contains("whole number"))
        #expect(message([("max_concurrency", "+3")]).contains("whole number"))
        #expect(message([("max_queue", "-1")]).contains("max_queue"))
        #expect(message([("confdir", "relative/dir")]).contains("absolute"))
        #expect(message([("timeout", "30s")]).contains("Postfix"))
    }

    @Test func validateCatchesBadStructs() {
        #expect(throws: PAMConfigError.self) { try PAMOptions(maxConcurrency: 0).validate() }
        #expect(throws: PAMConfigError.self) { try PAMOptions(timeout: .seconds(20)).validate() }
        #expect(throws: PAMConfigError.self) { try PAMOptions(confDir: "x").validate() }
        #expect(throws: Never.self) { try PAMOptions(maxConcurrency: 2, maxQueue: 0, maxStuck: 0).validate() }
    }

    @Test(arguments: ["", ".", "..", "a/b", "smtp ", "sm\ttp", "bad\u{0}name", String(repeating: "x", count: 256)])
    func badServiceNames(name: String) {
        #expect(throws: PAMConfigError.self) { try PAMPassdb.validateServiceName(name) }
        #expect(throws: PAMConfigError.self) {
            try PAMPassdb(service: name, options: PAMOptions(), defaultRealm: nil, logger: quietLogger)
        }
    }

    @Test func goodServiceNameAndIdentity() throws {
        let db = try PAMPassdb(
            service: "saslgate-unit", options: PAMOptions(confDir: "/nonexistent"), defaultRealm: nil, logger: quietLogger)
        #expect(db.name == "pam:saslgate-unit")
        #expect(db.driver == "pam")
        #expect(db.capabilities == PassdbCapabilities(verifyPlain: true))
        #expect(db.capabilities.credentials.isEmpty)
    }

    @Test func lookupCredentialsIsNotAvailable() async throws {
        let db = try PAMPassdb(service: "x", options: PAMOptions(confDir: "/nonexistent"), defaultRealm: nil, logger: quietLogger)
        for scheme in CredentialScheme.allCases {
            let r = await db.lookupCredentials(request("alice"), scheme: scheme)
            guard case .schemeNotAvailable = r else {
                Issue.record("expected schemeNotAvailable for \(scheme), got \(r)")
                continue
            }
        }
    }

    @Test func realmStrippingNames() throws {
        func name(_ mode: RealmStripping, _ user: String, defaultRealm: String? = "Example.ORG") throws -> String {
            let db = try PAMPassdb(
                service: "x", options: PAMOptions(stripRealm: mode, confDir: "/nonexistent"), defaultRealm: defaultRealm,
                logger: quietLogger)
            return db.pamUserName(for: request(user))
        }
        #expect(try name(.default, "alice@example.org") == "alice")
        #expect(try name(.default, "alice@EXAMPLE.org") == "alice")
        #expect(try name(.default, "alice@other.org") == "alice@other.org")
        #expect(try name(.default, "alice") == "alice")
        #expect(try name(.default, "alice@example.org", defaultRealm: nil) == "alice@example.org")
        #expect(try name(.all, "alice@other.org") == "alice")
        #expect(try name(.all, "a@b@other.org") == "a@b")
        #expect(try name(.none, "alice@example.org") == "alice@example.org")
        #expect(try name(.none, "alice") == "alice")
    }

    @Test func statusMapping() {
        typealias T = PAMTransaction
        #expect(T.map(status: PAM_SUCCESS, stage: .accountManagement, text: "") == .ok)
        #expect(T.map(status: PAM_AUTH_ERR, stage: .authenticate, text: "") == .passwordMismatch)
        #expect(T.map(status: PAM_USER_UNKNOWN, stage: .authenticate, text: "") == .userUnknown)
        #expect(T.map(status: PAM_USER_UNKNOWN, stage: .accountManagement, text: "") == .userUnknown)
        #expect(T.map(status: PAM_ACCT_EXPIRED, stage: .accountManagement, text: "") == .userDisabled(reason: "account expired"))
        #expect(T.map(status: PAM_NEW_AUTHTOK_REQD, stage: .accountManagement, text: "") == .passwordExpired)
        #expect(T.map(status: PAM_AUTHTOK_EXPIRED, stage: .accountManagement, text: "") == .passwordExpired)
        // Stage-aware: only after the password was proven right does a denial say "disabled".
        #expect(T.map(status: PAM_PERM_DENIED, stage: .authenticate, text: "") == .passwordMismatch)
        #expect(T.map(status: PAM_MAXTRIES, stage: .authenticate, text: "") == .passwordMismatch)
        if case .userDisabled = T.map(status: PAM_PERM_DENIED, stage: .accountManagement, text: "") {} else {
            Issue.record("PERM_DENIED from pam_acct_mgmt should be userDisabled")
        }
        if case .userDisabled = T.map(status: PAM_MAXTRIES, stage: .accountManagement, text: "") {} else {
            Issue.record("MAXTRIES from pam_acct_mgmt should be userDisabled")
        }
        for status in [
            PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_BUF_ERR, PAM_ABORT, PAM_SERVICE_ERR, PAM_CONV_ERR, PAM_CRED_INSUFFICIENT,
            PAM_IGNORE, PAM_OPEN_ERR, PAM_SYMBOL_ERR, 12345,
        ] {
            for stage in [PAMTransaction.Stage.authenticate, .accountManagement] {
                let r = T.map(status: status, stage: stage, text: "x")
                guard case .internalFailure = r else {
                    Issue.record("status \(status) at \(stage) should be internalFailure, got \(r)")
                    continue
                }
            }
        }
    }
}

@Suite("PAM conversation function")
struct PAMConversationTests {
    /// Calls the conversation with messages of the given styles; returns its status and the answers.
    func converse(_ styles: [Int32], text: String = "Password: ", user: String = "alice", password: String = "pä55 wörd")
        -> (Int32, [String?], ConversationContext)
    {
        let context = ConversationContext(user: user, password: Secret(password))
        let cText = strdup(text)!
        defer { free(cText) }
        let messages = UnsafeMutablePointer<pam_message>.allocate(capacity: styles.count)
        defer { messages.deallocate() }
        let pointers = UnsafeMutablePointer<UnsafePointer<pam_message>?>.allocate(capacity: styles.count)
        defer { pointers.deallocate() }
        for (i, style) in styles.enumerated() {
            messages[i] = pam_message(msg_style: style, msg: UnsafePointer(cText))
            pointers[i] = UnsafePointer(messages + i)
        }
        var responses: UnsafeMutablePointer<pam_response>?
        let status = withExtendedLifetime(context) {
            pamConversation(Int32(styles.count), pointers, &responses, Unmanaged.passUnretained(context).toOpaque())
        }
        var answers: [String?] = []
        if let responses {
            for i in 0..<styles.count {
                answers.append(responses[i].resp.map { String(cString: $0) })
                free(responses[i].resp)
            }
            free(responses)
        }
        return (status, answers, context)
    }

    @Test func echoOffGetsPasswordEchoOnGetsUser() {
        let (status, answers, context) = converse([PAM_PROMPT_ECHO_ON, PAM_PROMPT_ECHO_OFF])
        #expect(status == PAM_SUCCESS)
        #expect(answers == ["alice", "pä55 wörd"])
        #expect(context.messages.isEmpty)
    }

    @Test func infoAndErrorAreNotedNotAnswered() {
        let (status, answers, context) = converse(
            [PAM_TEXT_INFO, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF], text: "Your account\u{1B}[31m expires soon")
        #expect(status == PAM_SUCCESS)
        #expect(answers == [nil, nil, "pä55 wörd"])
        #expect(context.messages.count == 2)
        #expect(context.messages[0] == "info: Your account?[31m expires soon")
        #expect(context.messages[1].hasPrefix("error: "))
    }

    @Test func binaryPromptFailsTheConversation() {
        let (status, answers, context) = converse([PAM_PROMPT_ECHO_OFF, PAM_BINARY_PROMPT])
        #expect(status == PAM_CONV_ERR)
        #expect(answers.isEmpty)  // nothing handed to PAM; the password copy was wiped and freed
        #expect(context.refusedPrompts == [PAM_BINARY_PROMPT])
    }

    @Test func refusesBadCounts() {
        let context = ConversationContext(user: "a", password: Secret("b"))
        var responses: UnsafeMutablePointer<pam_response>?
        let ptr = Unmanaged.passUnretained(context).toOpaque()
        let dummy = UnsafeMutablePointer<UnsafePointer<pam_message>?>.allocate(capacity: 1)
        defer { dummy.deallocate() }
        dummy[0] = nil
        #expect(pamConversation(0, dummy, &responses, ptr) == PAM_CONV_ERR)
        #expect(pamConversation(PAM_MAX_NUM_MSG + 1, dummy, &responses, ptr) == PAM_CONV_ERR)
        #expect(pamConversation(1, dummy, &responses, ptr) == PAM_CONV_ERR)
        #expect(responses == nil)
        withExtendedLifetime(context) {}
    }

    @Test func messageCountIsCapped() {
        let styles = Array(repeating: PAM_TEXT_INFO, count: 20)
        let (status, _, context) = converse(styles)
        #expect(status == PAM_SUCCESS)
        #expect(context.messages.count == PAMTransaction.maxMessages)
        #expect(context.droppedMessages == 20 - PAMTransaction.maxMessages)
    }
}
