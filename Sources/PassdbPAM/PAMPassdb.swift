public import AuthCore
public import Logging
public import Passdb
#if canImport(Glibc)
import Glibc
#endif

/// `pam:SERVICE`: checks plaintext passwords with the system's PAM stack for SERVICE
/// (`/etc/pam.d/SERVICE`, or `confDir/SERVICE`). PAM cannot hand out credentials, so only PLAIN and
/// LOGIN work with it.
///
/// Each check is one PAM transaction — `pam_start`, PAM_RHOST (the client's `rip`), PAM_TTY `saslgate`,
/// our no-op PAM_FAIL_DELAY, `pam_authenticate`, `pam_acct_mgmt`, `pam_end` — run on a bounded pool of
/// dedicated threads with a deadline (see `PAMOptions`). PAM_RUSER stays unset: the login name is the
/// client's choice, and modules such as pam_rhosts would trust it as a remote user vouched for by the
/// remote host. A call that misses the deadline answers `.internalFailure("PAM timed out")`, a full
/// queue `.internalFailure("PAM busy")`: temporary failures, never a success.
///
/// Empty passwords and passwords containing NUL are refused without asking PAM (`.passwordMismatch`);
/// PAM is also called with PAM_DISALLOW_NULL_AUTHTOK, so `nullok` in a stack never lets an account with
/// an empty password in.
public final class PAMPassdb: PasswordDatabase {
    public let service: String
    public let options: PAMOptions
    /// Lower-cased; used by `RealmStripping.default`.
    public let defaultRealm: String?
    public static let driverName = "pam"
    public var driver: String { PAMPassdb.driverName }
    public var name: String { "\(PAMPassdb.driverName):\(service)" }
    public var capabilities: PassdbCapabilities { PassdbCapabilities(verifyPlain: true) }

    private let logger: Logger
    private let pool: PAMThreadPool<PassdbResult>

    /// Fails on an unusable service name (empty, `/`, NUL, control characters, over 255 bytes) or
    /// options out of range. Logs a warning when the service file is missing: Linux-PAM then falls back
    /// to the `other` service, which on Debian is the full system login stack.
    public init(service: String, options: PAMOptions = PAMOptions(), defaultRealm: String?, logger: Logger) throws(PAMConfigError) {
        try PAMPassdb.validateServiceName(service)
        try options.validate()
        self.service = service
        self.options = options
        self.defaultRealm = defaultRealm.flatMap { $0.isEmpty ? nil : $0.lowercased() }
        var logger = logger
        logger[metadataKey: "passdb"] = "\(PAMPassdb.driverName):\(service)"
        self.logger = logger
        self.pool = PAMThreadPool(
            maxThreads: options.maxConcurrency, maxQueue: options.maxQueue, maxStuck: options.maxStuck,
            timeout: options.timeout)

        let dir = options.confDir ?? "/etc/pam.d"
        if access(dir + "/" + service, R_OK) != 0 {
            logger.warning(
                "PAM service file \(dir)/\(service) is missing or unreadable: PAM will use the 'other' service instead")
        }
    }

    /// A PAM service name is a file name in /etc/pam.d.
    public static func validateServiceName(_ service: String) throws(PAMConfigError) {
        if service.isEmpty { throw .invalidService(service, reason: "empty") }
        if service.utf8.count > 255 { throw .invalidService(service, reason: "longer than 255 bytes") }
        if service == "." || service == ".." { throw .invalidService(service, reason: "not a file name") }
        for byte in service.utf8 where byte == UInt8(ascii: "/") || byte < 0x21 || byte == 0x7F {
            throw .invalidService(service, reason: "must not contain '/', spaces or control characters")
        }
    }

    /// The name handed to PAM for a request, after `options.stripRealm`.
    public func pamUserName(for request: PassdbRequest) -> String {
        guard let realm = request.realm else { return request.user }
        switch options.stripRealm {
        case .none: return request.user
        case .all: return request.localPart
        case .default: return realm == defaultRealm ? request.localPart : request.user
        }
    }

    public var statistics: PAMPoolStatistics { pool.statistics }

    /// Refuses new checks and lets idle PAM threads exit. Checks in flight still finish.
    public func shutdown() { pool.shutdown() }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        .schemeNotAvailable("PAM can only verify plaintext passwords, not give out \(scheme) credentials")
    }

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        let pamUser = pamUserName(for: request)
        var logger = self.logger
        logger[metadataKey: "user"] = "\(sanitizeForLog(request.user))"
        if let rip = request.remoteIP { logger[metadataKey: "rip"] = "\(sanitizeForLog(rip, limit: 64))" }
        if pamUser.isEmpty || pamUser.utf8.contains(0) {
            logger.debug("PAM: user name unusable for PAM")
            return .userUnknown
        }
        if password.isEmpty || password.containsNUL {
            logger.debug("PAM: empty password or password with NUL refused without asking PAM")
            return .passwordMismatch
        }

        let transaction = PAMTransaction(
            service: service, confDir: options.confDir, user: pamUser, password: password, remoteHost: request.remoteIP)
        let workLogger = logger
        let started = ContinuousClock.now
        let outcome = await pool.run {
            let outcome = transaction.run()
            for message in outcome.messages {
                workLogger.info("PAM module message: \(message)")
            }
            if !outcome.refusedPrompts.isEmpty {
                workLogger.error(
                    "PAM asked for something other than the user name or password (prompt styles \(outcome.refusedPrompts)); only PLAIN-style stacks are supported")
            }
            switch outcome.result {
            case .internalFailure(let why):
                workLogger.error("PAM: \(why)")
            default:
                workLogger.debug(
                    "PAM: \(outcome.stage.rawValue) -> \(outcome.statusText) (\(outcome.status)) as \(String(describing: outcome.result))")
            }
            return outcome.result
        }
        switch outcome {
        case .finished(let result):
            return result
        case .timedOut:
            let stats = pool.statistics
            logger.error(
                "PAM did not answer within \(options.timeout); the call is abandoned (stuck PAM threads: \(stats.stuck), replaced up to \(options.maxStuck))",
                metadata: ["elapsed_ms": "\(Int((ContinuousClock.now - started).seconds * 1000))"])
            return .internalFailure("PAM timed out")
        case .busy:
            logger.warning("PAM busy: \(options.maxConcurrency) calls running and \(options.maxQueue) waiting; refused")
            return .internalFailure("PAM busy")
        case .unavailable(let stuck):
            logger.error("PAM unavailable: all \(stuck) PAM threads are stuck in calls that never returned; refused")
            return .internalFailure("PAM busy (all threads stuck)")
        case .cancelled:
            return .internalFailure("PAM check cancelled")
        case .shutDown:
            return .internalFailure("PAM passdb shut down")
        }
    }
}
