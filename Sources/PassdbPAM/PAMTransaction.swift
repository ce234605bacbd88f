import AuthCore
import CPAM
import Passdb
#if canImport(Glibc)
import Glibc
#endif

/// One blocking PAM transaction: `pam_start[_confdir]`, items, `pam_authenticate`, `pam_acct_mgmt`,
/// `pam_end`. Runs on a PAM pool thread, never on an event loop or the cooperative pool.
struct PAMTransaction {
    /// Which PAM call produced a status (the mapping of some codes depends on it).
    enum Stage: String, Sendable {
        case start = "pam_start"
        case authenticate = "pam_authenticate"
        case accountManagement = "pam_acct_mgmt"
        case end = "pam_end"
    }

    struct Outcome: Sendable {
        var result: PassdbResult
        /// The PAM status of the call that decided (PAM_SUCCESS when all passed).
        var status: Int32
        var stage: Stage
        /// `pam_strerror` of `status`.
        var statusText: String
        /// PAM_ERROR_MSG / PAM_TEXT_INFO texts the modules sent, sanitized for the log.
        var messages: [String]
        /// Prompt styles the conversation refused (binary prompts, unknown styles).
        var refusedPrompts: [Int32]
    }

    var service: String
    var confDir: String?
    /// The name PAM sees (after realm stripping). No NUL.
    var user: String
    var password: Secret
    var remoteHost: String?
    /// PAM_TTY: some modules (pam_access, pam_securetty) expect one. Dovecot sets "dovecot".
    var tty: String = "saslgate"

    /// At most this many module messages are kept per transaction (the rest are counted, not logged).
    static let maxMessages = 8

    func run() -> Outcome {
        let context = ConversationContext(user: user, password: password)
        return withExtendedLifetime(context) {
            var conversation = pam_conv(
                conv: pamConversation, appdata_ptr: Unmanaged.passUnretained(context).toOpaque())
            var handle: OpaquePointer?
            let startStatus: Int32 = service.withCString { cService in
                user.withCString { cUser in
                    if let confDir {
                        return confDir.withCString { cDir in pam_start_confdir(cService, cUser, &conversation, cDir, &handle) }
                    }
                    return pam_start(cService, cUser, &conversation, &handle)
                }
            }
            guard startStatus == PAM_SUCCESS, let pamh = handle else {
                let text = PAMTransaction.errorText(handle, startStatus)
                if let handle { pam_end(handle, startStatus) }
                return Outcome(
                    result: .internalFailure("pam_start(\(sanitizedForMessage(service))) failed: \(text)"),
                    status: startStatus, stage: .start, statusText: text, messages: [], refusedPrompts: [])
            }

            // Items. Like Dovecot, failures here are ignored: they only inform modules. No PAM_RUSER:
            // it names the remote user as vouched for by the remote host (pam_rhosts trusts it), and
            // here the only name is the login the client chose.
            if let remoteHost, !remoteHost.isEmpty, !remoteHost.utf8.contains(0) {
                _ = remoteHost.withCString { pam_set_item(pamh, PAM_RHOST, $0) }
            }
            _ = tty.withCString { pam_set_item(pamh, PAM_TTY, $0) }
            // Our own failure-delay function, which does nothing: without it libpam sleeps ~2 s on a
            // failure (pam_unix asks for that) on this thread; the daemon applies its own delay.
            _ = pam_set_item(pamh, PAM_FAIL_DELAY, unsafeBitCast(noFailDelay, to: UnsafeRawPointer.self))

            var stage = Stage.authenticate
            var status = pam_authenticate(pamh, Int32(PAM_DISALLOW_NULL_AUTHTOK))
            if status == PAM_SUCCESS {
                stage = .accountManagement
                status = pam_acct_mgmt(pamh, Int32(PAM_DISALLOW_NULL_AUTHTOK))
            }
            let text = PAMTransaction.errorText(pamh, status)
            var result = PAMTransaction.map(status: status, stage: stage, text: text)
            let endStatus = pam_end(pamh, status)
            if endStatus != PAM_SUCCESS {
                // Like Dovecot: a failed pam_end means the transaction cannot be trusted.
                result = .internalFailure("pam_end failed: \(PAMTransaction.errorText(nil, endStatus))")
                stage = .end
                status = endStatus
            }
            var messages = context.messages
            if context.droppedMessages > 0 { messages.append("(\(context.droppedMessages) more messages not logged)") }
            return Outcome(
                result: result, status: status, stage: stage, statusText: text, messages: messages,
                refusedPrompts: context.refusedPrompts)
        }
    }

    static func errorText(_ pamh: OpaquePointer?, _ status: Int32) -> String {
        guard let s = pam_strerror(pamh, status) else { return "PAM error \(status)" }
        return sanitizeForLog(String(cString: s), limit: 120)
    }

    /// PAM status -> passdb result.
    ///
    /// - PAM_SUCCESS -> ok; PAM_AUTH_ERR -> passwordMismatch; PAM_USER_UNKNOWN -> userUnknown
    ///   (pam_unix answers AUTH_ERR for unknown users too).
    /// - PAM_ACCT_EXPIRED -> userDisabled; PAM_NEW_AUTHTOK_REQD, PAM_AUTHTOK_EXPIRED -> passwordExpired.
    /// - PAM_PERM_DENIED, PAM_MAXTRIES: from pam_acct_mgmt (the password was right, an account policy
    ///   says no: pam_access, pam_nologin, a lock-out) -> userDisabled. From pam_authenticate the
    ///   password was not proven right, so -> passwordMismatch: saying "disabled" there would tell a
    ///   guesser that an account exists and is locked, without the password.
    /// - Anything else (PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_BUF_ERR, PAM_ABORT, PAM_SERVICE_ERR,
    ///   PAM_CONV_ERR, PAM_CRED_INSUFFICIENT, PAM_IGNORE, ...) -> internalFailure: a temporary failure,
    ///   never ok.
    static func map(status: Int32, stage: Stage, text: String) -> PassdbResult {
        switch status {
        case PAM_SUCCESS: return .ok
        case PAM_AUTH_ERR: return .passwordMismatch
        case PAM_USER_UNKNOWN: return .userUnknown
        case PAM_ACCT_EXPIRED: return .userDisabled(reason: "account expired")
        case PAM_NEW_AUTHTOK_REQD, PAM_AUTHTOK_EXPIRED: return .passwordExpired
        case PAM_PERM_DENIED, PAM_MAXTRIES:
            if stage == .accountManagement {
                return .userDisabled(reason: status == PAM_MAXTRIES ? "too many failures" : "access denied by PAM account policy")
            }
            return .passwordMismatch
        default:
            return .internalFailure("\(stage.rawValue) failed: \(text) (\(status))")
        }
    }
}

/// What the conversation function needs; passed to PAM as `appdata_ptr` (unretained: the transaction
/// keeps it alive until `pam_end`). Touched only by the thread running the transaction.
final class ConversationContext {
    let user: String
    let password: Secret
    var messages: [String] = []
    var droppedMessages = 0
    var refusedPrompts: [Int32] = []

    init(user: String, password: Secret) {
        self.user = user
        self.password = password
    }

    func note(_ style: Int32, _ text: UnsafePointer<CChar>?) {
        guard messages.count < PAMTransaction.maxMessages else {
            droppedMessages += 1
            return
        }
        let kind = style == PAM_ERROR_MSG ? "error" : "info"
        let body = text.map { sanitizeForLog(String(cString: $0), limit: 160) } ?? ""
        messages.append("\(kind): \(body)")
    }
}

/// Answers PAM's prompts the way Dovecot does: PAM_PROMPT_ECHO_OFF gets the password, PAM_PROMPT_ECHO_ON
/// the user name (a module asking for the login), PAM_ERROR_MSG / PAM_TEXT_INFO are noted for the log
/// and get no answer; anything else (binary prompts) fails the conversation. Answers are malloc'ed
/// copies that PAM frees; on failure the ones made so far are wiped and freed here.
let pamConversation:
    @convention(c) (
        Int32, UnsafeMutablePointer<UnsafePointer<pam_message>?>?, UnsafeMutablePointer<UnsafeMutablePointer<pam_response>?>?,
        UnsafeMutableRawPointer?
    ) -> Int32 = { count, messages, responses, appdata in
        guard let messages, let responses, let appdata, count > 0, count <= PAM_MAX_NUM_MSG else {
            return PAM_CONV_ERR
        }
        responses.pointee = nil
        let context = Unmanaged<ConversationContext>.fromOpaque(appdata).takeUnretainedValue()
        guard let raw = calloc(Int(count), MemoryLayout<pam_response>.stride) else { return PAM_BUF_ERR }
        let answers = raw.bindMemory(to: pam_response.self, capacity: Int(count))

        func discard(_ upTo: Int) {
            for j in 0..<upTo {
                if let r = answers[j].resp {
                    explicit_bzero(r, strlen(r))
                    free(r)
                    answers[j].resp = nil
                }
            }
            free(raw)
        }

        for i in 0..<Int(count) {
            guard let message = messages[i] else {
                discard(i)
                return PAM_CONV_ERR
            }
            let style = message.pointee.msg_style
            var answer: UnsafeMutablePointer<CChar>?
            switch style {
            case PAM_PROMPT_ECHO_OFF:
                answer = context.password.withBytes { pw -> UnsafeMutablePointer<CChar>? in
                    guard let p = malloc(pw.count + 1)?.assumingMemoryBound(to: UInt8.self) else { return nil }
                    if let base = pw.baseAddress, pw.count > 0 { memcpy(p, base, pw.count) }
                    p[pw.count] = 0
                    return UnsafeMutableRawPointer(p).assumingMemoryBound(to: CChar.self)
                }
                if answer == nil {
                    discard(i)
                    return PAM_BUF_ERR
                }
            case PAM_PROMPT_ECHO_ON:
                answer = strdup(context.user)
                if answer == nil {
                    discard(i)
                    return PAM_BUF_ERR
                }
            case PAM_ERROR_MSG, PAM_TEXT_INFO:
                context.note(style, message.pointee.msg)
            default:
                context.refusedPrompts.append(style)
                discard(i)
                return PAM_CONV_ERR
            }
            answers[i].resp_retcode = 0
            answers[i].resp = answer
        }
        responses.pointee = answers
        return PAM_SUCCESS
    }

/// Installed as PAM_FAIL_DELAY: no sleep on this thread.
private let noFailDelay: @convention(c) (Int32, UInt32, UnsafeMutableRawPointer?) -> Void = { _, _, _ in }
