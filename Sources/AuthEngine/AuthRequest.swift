import AuthCore
import AuthProtocol
import Passdb
import SASL

/// One AUTH request from its AUTH line to its OK, FAIL or silent end: the command, the running
/// mechanism, where it stands, and the names it goes by. Lives in its connection's `RequestTable`; only
/// that connection's executor touches it.
final class AuthRequest {
    /// Where the exchange stands, as far as a CONT from the client is concerned
    /// (docs/PROTOCOL.md, "CONT").
    enum State: Equatable {
        /// A challenge was sent; one CONT is expected.
        case awaitingResponse
        /// The mechanism or a passdb is working; a CONT now is unexpected.
        case busy
        /// Final server data went out as an extra CONT; the next CONT gets the OK.
        case awaitingFinalAck
    }

    let id: UInt32
    let command: AuthCommand
    let descriptor: MechanismDescriptor
    var mechanism: any SASLMechanism
    var state: State = .busy
    /// When the AUTH line arrived (the connection's monotonic clock).
    let started: Double
    /// Normalized user once the username policy accepted it; the name as sent before that.
    var user: String?
    /// The user name the penalty table counts: set only once the username policy accepted the name, so
    /// a refused (raw, client-chosen) name is counted under the remote IP alone (docs/SECURITY.md).
    var penaltyUser: String?
    /// The authentication identity when an authz rule lets it act as `user`.
    var authcid: String?
    /// The authorization identity to return once the authcid's password is verified.
    var pendingAuthzid: String?
    /// The passdb that answered, as configured.
    var passdb: String?
    /// The name of the app password that matched (`app=` in the OK line and the log); nil: the main
    /// password or none.
    var appPassword: String?
    /// The password of a failed plaintext check, kept only to recognise the same wrong password
    /// retried; never logged, wiped when the failure is counted.
    var failedPassword: Secret?
    /// Why a bearer token was refused: the request ends with it once the client answered the mechanism's
    /// error challenge.
    var tokenFailure: AuthFailure?

    init(command: AuthCommand, descriptor: MechanismDescriptor, mechanism: any SASLMechanism, started: Double) {
        self.id = command.id
        self.command = command
        self.descriptor = descriptor
        self.mechanism = mechanism
        self.started = started
    }

    /// Takes the names the identity gate settled on.
    func adopt(_ names: CheckedIdentity) {
        user = names.user
        penaltyUser = names.penaltyUser
        if let authzid = names.authzid {
            authcid = names.user
            pendingAuthzid = authzid
        }
    }

    /// The passdb request for the name the gate accepted.
    func passdbRequest(user: String) -> PassdbRequest {
        PassdbRequest(
            user: user, mechanism: descriptor.name, service: command.service, remoteIP: command.remoteIP,
            localIP: command.localIP, secured: command.secured)
    }
}

/// How a request ended, as the `result=` key of its log line says it (docs/LOGGING.md).
enum RequestResult: String {
    case ok, failed, cancelled, dropped, timeout
}

extension AuthLogRecord {
    /// The log line of a finished request. Client-supplied values are sanitized here; no password or
    /// payload is part of a request record, so none can reach the line.
    init(
        _ request: AuthRequest, result: RequestResult, reason: String?, delay: Double?, seconds: Double, conn: UInt64,
        cpid: UInt32?
    ) {
        let c = request.command
        self.init(
            result: result.rawValue, user: request.user.map { sanitizeForLog($0) } ?? "",
            authcid: request.authcid.map { sanitizeForLog($0) }, mechanism: request.descriptor.name,
            service: sanitizeForLog(c.service, limit: 32), remoteIP: sanitizeForLog(c.remoteIP ?? "", limit: 64),
            localIP: sanitizeForLog(c.localIP ?? "", limit: 64), secured: c.secured, passdb: request.passdb,
            app: request.appPassword.map { sanitizeForLog($0, limit: 64) },
            reason: reason.map { sanitizeForLog($0, limit: 200) },
            delayMS: delay.flatMap { $0 > 0 ? Int(($0 * 1000).rounded()) : nil },
            durationMS: Int((seconds * 1000).rounded()), conn: conn, cpid: cpid, id: request.id)
    }
}
