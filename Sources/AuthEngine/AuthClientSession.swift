public import AuthCore
public import AuthProtocol
import Logging
public import Passdb
public import SASL

/// One client connection's protocol state: the handshake, then the table of requests in flight
/// (Dovecot's auth-client-connection + auth-request-handler). Confined to the connection's executor;
/// all I/O goes through `ConnectionIO`.
public final class AuthClientSession {
    /// Reasons sent in FAIL lines (Dovecot 2.3's wording where it has one, protocol.md §2.6).
    public enum Reason {
        public static let timedOut = "Authentication request timed out"
        public static let unexpectedContinuation = "Unexpected continuation"
        public static let invalidBase64Initial = "Invalid base64 data in initial response"
        public static let invalidBase64Continued = "Invalid base64 data in continued response"
        public static let cleartextNeedsTLS = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections"
        public static let passwordExpired = "Password expired"
        public static let tooManyRequests = "Too many pending authentication requests"
        public static let coolDown = "Too many failed authentication attempts; try again later"
    }

    enum Handshake { case awaitingVersion, awaitingCPID, ready }

    final class Request {
        enum State {
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
        let started: Double
        /// Normalized user once known; the name as sent before that.
        var user: String?
        /// The user name the penalty table counts: set only once the username policy accepted the
        /// name, so a refused (raw, client-chosen) name is counted under the remote IP alone.
        var penaltyUser: String?
        /// The authentication identity when an authz rule lets it act as `user`.
        var authcid: String?
        /// The authorization identity to return once the authcid's password is verified.
        var pendingAuthzid: String?
        var passdb: String?
        /// The password of a failed plaintext check, kept only to recognise the same wrong password
        /// retried; never logged, wiped with the request.
        var failedPassword: Secret?

        init(command: AuthCommand, descriptor: MechanismDescriptor, mechanism: any SASLMechanism, started: Double) {
            self.id = command.id
            self.command = command
            self.descriptor = descriptor
            self.mechanism = mechanism
            self.started = started
        }
    }

    struct DelayedFailure {
        var due: Double
        var line: [UInt8]
    }

    private let io: any ConnectionIO
    private var service: AuthService
    private let serviceProvider: () -> AuthService
    public let cuid: UInt64
    /// Peer description for logs (e.g. `pid=1234 uid=107`).
    private let peer: String
    private var logger: Logger
    private var handshake = Handshake.awaitingVersion
    private var clientMinor: UInt32 = 0
    private var clientPID: UInt32 = 0
    private var requests: [UInt32: Request] = [:]
    private var delayedFailures: [DelayedFailure] = []
    private var failureTimer: (any ScheduledWork)?
    private var sweepTimer: (any ScheduledWork)?
    private var closed = false

    /// `serviceProvider` is asked for the current configuration at each new request (reloads).
    public init(io: any ConnectionIO, cuid: UInt64, peer: String, serviceProvider: @escaping () -> AuthService) {
        self.io = io
        self.cuid = cuid
        self.peer = peer
        self.serviceProvider = serviceProvider
        self.service = serviceProvider()
        self.logger = service.logger
        self.logger[metadataKey: "conn"] = "\(cuid)"
    }

    public var pendingRequestCount: Int { requests.count }

    /// VERSION and CPID have been received.
    public var isHandshakeComplete: Bool { handshake == .ready }

    /// Replies the server owes this client: requests being worked on plus failures waiting out the
    /// delay (requests waiting for the client are not owed anything).
    public var owedReplies: Int {
        var busy = 0
        for request in requests.values where request.state == .busy { busy += 1 }
        return busy + delayedFailures.count
    }

    /// The greeting to send at once on accept.
    public func greeting(identity: ServerIdentity) -> [UInt8] {
        identity.greeting(service: service, cuid: cuid)
    }

    /// Handles one input line. A thrown violation means: log it and close the connection.
    public func handle(line: ArraySlice<UInt8>) throws(ProtocolViolation) {
        let message = try ClientMessageParser.parse(line)
        switch (handshake, message) {
        case (.awaitingVersion, .version(let major, let minor)):
            guard major == ProtocolLimits.majorVersion else { throw .incompatibleMajor(major) }
            clientMinor = minor
            handshake = .awaitingCPID
        case (.awaitingVersion, _):
            throw .invalidVersionLine(Self.describe(message))
        case (.awaitingCPID, .cpid(let pid)):
            clientPID = pid
            logger[metadataKey: "cpid"] = "\(pid)"
            handshake = .ready
        case (.awaitingCPID, _):
            throw .unknownHandshakeCommand(Self.describe(message))
        case (.ready, .auth(let command)):
            try beginAuth(command)
        case (.ready, .cont(let id, let data)):
            continueAuth(id: id, data: data)
        case (.ready, .cancel(let id)):
            if let request = requests.removeValue(forKey: id) {
                log(request, result: "cancelled", reason: "client cancelled")
            }
        case (.ready, _):
            throw .unknownCommand(Self.describe(message))
        }
    }

    /// The connection is gone: drop everything; nothing more is sent.
    public func connectionClosed() {
        closed = true
        if !requests.isEmpty {
            logger.info("client disconnected with \(requests.count) pending requests", metadata: ["peer": "\(peer)"])
        }
        requests.removeAll()
        delayedFailures.removeAll()
        failureTimer?.cancel()
        failureTimer = nil
        sweepTimer?.cancel()
        sweepTimer = nil
    }

    // MARK: - AUTH

    private func beginAuth(_ command: AuthCommand) throws(ProtocolViolation) {
        service = serviceProvider()
        guard let descriptor = service.mechanism(named: command.mechanism) else {
            throw .unknownMechanism(sanitizeForLog(command.mechanism, limit: 40))
        }
        guard requests[command.id] == nil else { throw .duplicateID(command.id) }
        if requests.count >= service.settings.maxPendingRequests && !evictOldestWaiting() {
            send(.fail(id: command.id, user: nil, code: .tempFail, reason: Reason.tooManyRequests, fields: []))
            logger.warning("request refused: too many pending requests", metadata: ["id": "\(command.id)"])
            return
        }
        let request = Request(
            command: command, descriptor: descriptor, mechanism: descriptor.make(service.mechanismContext),
            started: io.now())
        requests[command.id] = request
        armSweep()

        let initial: [UInt8]?
        switch command.initialResponse(clientMinor: clientMinor) {
        case .absent: initial = nil
        case .bytes(let bytes): initial = bytes
        case .invalidBase64:
            finishNow(request, .fail(id: request.id, user: nil, code: .invalidBase64, reason: Reason.invalidBase64Initial, fields: []),
                      result: "failed", reason: "invalid base64 in initial response")
            return
        }
        if !command.noPenalty && service.penalty.isBlocked(ip: command.remoteIP, user: nil) {
            finishNow(request, .fail(id: request.id, user: nil, code: nil, reason: Reason.coolDown, fields: []),
                      result: "failed", reason: "blocked: too many failures from this IP (penalty_cooldown)")
            return
        }
        if descriptor.flags.contains(.plaintext) && service.settings.cleartextRequiresTLS && !command.secured {
            // Refused before any passdb is asked: nothing about the account is revealed.
            finishNow(request, .fail(id: request.id, user: nil, code: nil, reason: Reason.cleartextNeedsTLS, fields: []),
                      result: "failed", reason: "cleartext mechanism on a connection without TLS (cleartext_requires_tls)")
            return
        }
        if let initial, !descriptor.allowsNUL, initial.contains(0) {
            fail(request, reason: "NUL byte in client data")
            return
        }
        run(request, request.mechanism.step(.start(initialResponse: initial)))
    }

    /// Makes room by dropping the oldest request that waits for the client (an abandoned one: Postfix
    /// never sends CANCEL). False when every pending request is busy.
    private func evictOldestWaiting() -> Bool {
        guard let victim = requests.values.filter({ $0.state != .busy }).min(by: { $0.started < $1.started }) else {
            return false
        }
        requests[victim.id] = nil
        log(victim, result: "dropped", reason: "too many pending requests; oldest abandoned request dropped")
        return true
    }

    // MARK: - CONT

    private func continueAuth(id: UInt32, data: [UInt8]) {
        guard let request = requests[id] else {
            send(.fail(id: id, user: nil, code: nil, reason: Reason.timedOut, fields: []))
            return
        }
        switch request.state {
        case .busy:
            finishNow(request, .fail(id: id, user: nil, code: nil, reason: Reason.unexpectedContinuation, fields: []),
                      result: "failed", reason: "unexpected continuation")
        case .awaitingFinalAck:
            succeed(request, finalData: nil)
        case .awaitingResponse:
            guard let bytes = DovecotBase64.decode(data) else {
                finishNow(request, .fail(id: id, user: nil, code: .invalidBase64, reason: Reason.invalidBase64Continued, fields: []),
                          result: "failed", reason: "invalid base64 in continued response")
                return
            }
            if !request.descriptor.allowsNUL && bytes.contains(0) {
                fail(request, reason: "NUL byte in client data")
                return
            }
            request.state = .busy
            run(request, request.mechanism.step(.response(bytes)))
        }
    }

    // MARK: - Mechanism steps

    private func run(_ request: Request, _ step: MechanismStep) {
        guard requests[request.id] === request else { return }  // cancelled, timed out or connection gone
        switch step {
        case .challenge(let bytes):
            request.state = .awaitingResponse
            send(.cont(id: request.id, base64: DovecotBase64.encode(bytes)))
        case .verifyPlain(let identity, let password):
            guard let passdbRequest = prepare(request, identity) else { return }
            request.state = .busy
            let chain = service.chain
            if let (result, passdb) = chain.verifyPlainNow(passdbRequest, password: password) {
                // Answered without hashing or blocking ({PLAIN} entries, a cache hit): no task, no hop,
                // and the reply leaves with the others of this read.
                if result == .passwordMismatch { request.failedPassword = password }
                verified(request, result, passdb)
                return
            }
            io.runDetached({ await chain.verifyPlain(passdbRequest, password: password) }) { [weak self] result, passdb in
                if result == .passwordMismatch { request.failedPassword = password }
                self?.verified(request, result, passdb)
            }
        case .lookupCredentials(let identity, let scheme):
            guard let passdbRequest = prepare(request, identity) else { return }
            request.state = .busy
            let chain = service.chain
            io.runDetached({ await chain.lookupCredentials(passdbRequest, scheme: scheme) }) { [weak self] result, passdb in
                self?.credentialsFound(request, result, passdb, scheme: scheme)
            }
        case .success(let finalData):
            if let finalData, !request.command.finalResponseOK {
                request.state = .awaitingFinalAck
                send(.cont(id: request.id, base64: DovecotBase64.encode(finalData)))
            } else {
                succeed(request, finalData: finalData)
            }
        case .failure(let failure):
            switch failure {
            case .malformed(let why): fail(request, reason: why)
            case .failed(let user, let why):
                if request.user == nil { request.user = user }
                fail(request, reason: why)
            }
        }
    }

    /// Normalizes the identity into a passdb request; fails the request when the name is refused.
    private func prepare(_ request: Request, _ identity: MechanismIdentity) -> PassdbRequest? {
        request.user = identity.authcid
        let user: String
        switch service.usernamePolicy.normalize(identity.authcid, realm: identity.realm) {
        case .success(let normalized): user = normalized
        case .failure(let rejection):
            fail(request, reason: rejection.description)
            return nil
        }
        request.user = user
        request.penaltyUser = user
        if !request.command.noPenalty && service.penalty.isBlocked(ip: request.command.remoteIP, user: user) {
            finishNow(request, .fail(id: request.id, user: user, code: nil, reason: Reason.coolDown, fields: []),
                      result: "failed", reason: "blocked: too many failures for this user from this IP (penalty_cooldown)")
            return nil
        }
        if let authzid = identity.authzid, !authzid.isEmpty, authzid != identity.authcid, authzid != user {
            // Acting as another user needs an explicit rule (authz_rules); the password checked is the
            // authcid's, the name returned in OK is the authzid.
            guard case .success(let target) = service.usernamePolicy.normalize(authzid),
                service.settings.authzRules.contains(where: { $0.allows(authcid: user, authzid: target) })
            else {
                fail(request, reason: "authorization identity \(sanitizeForLog(authzid)) differs from the authentication identity and no authz_rules entry allows it")
                return nil
            }
            request.authcid = user
            request.pendingAuthzid = target
        }
        let c = request.command
        return PassdbRequest(
            user: user, mechanism: request.descriptor.name, service: c.service, remoteIP: c.remoteIP,
            localIP: c.localIP, secured: c.secured)
    }

    private func verified(_ request: Request, _ result: PassdbResult, _ passdb: String?) {
        guard requests[request.id] === request else { return }
        request.passdb = passdb
        switch result {
        case .ok:
            run(request, request.mechanism.step(.verified))
        case .passwordMismatch: fail(request, reason: "password mismatch")
        case .userUnknown: fail(request, reason: "unknown user")
        case .userDisabled(let why): fail(request, reason: "user disabled" + (why.map { ": \($0)" } ?? ""), code: .userDisabled)
        case .passwordExpired: fail(request, reason: "password expired", code: .passExpired, clientReason: Reason.passwordExpired)
        case .schemeNotAvailable(let why): fail(request, reason: "cannot verify the stored password: \(why)")
        case .internalFailure(let why): fail(request, reason: "internal failure: \(why)", code: .tempFail, delayed: false)
        }
    }

    private func credentialsFound(_ request: Request, _ result: CredentialLookup, _ passdb: String?, scheme: CredentialScheme) {
        guard requests[request.id] === request else { return }
        request.passdb = passdb
        switch result {
        case .found(let credential):
            // Verifying a proof may mean thousands of hash rounds (SCRAM from a cleartext entry):
            // never on the event loop.
            let mechanism = request.mechanism
            io.runDetached({ () -> (any SASLMechanism, MechanismStep) in
                var m = mechanism
                let step = m.step(.credentials(credential))
                return (m, step)
            }) { [weak self] mechanism, step in
                guard let self, self.requests[request.id] === request else { return }
                request.mechanism = mechanism
                self.run(request, step)
            }
        case .userUnknown: fail(request, reason: "unknown user")
        case .userDisabled(let why): fail(request, reason: "user disabled" + (why.map { ": \($0)" } ?? ""), code: .userDisabled)
        case .schemeNotAvailable(let why):
            fail(request, reason: "no \(scheme) secret stored for this user (\(why)); store one or use another mechanism")
        case .internalFailure(let why): fail(request, reason: "internal failure: \(why)", code: .tempFail, delayed: false)
        }
    }

    // MARK: - Replies

    private func succeed(_ request: Request, finalData: [UInt8]?) {
        var fields: [(String, String?)] = []
        if request.command.debug, let passdb = request.passdb { fields.append(("passdb", passdb)) }
        if let finalData { fields.append(("resp", DovecotBase64.encode(finalData))) }
        if !request.command.noPenalty, let user = request.penaltyUser {
            service.penalty.recordSuccess(ip: request.command.remoteIP, user: user)
        }
        if let target = request.pendingAuthzid {
            request.user = target
        } else if request.descriptor.need == .nothing, let anonymous = service.settings.anonymousUsername {
            request.user = anonymous
            fields.append(("anonymous", nil))
        }
        let user = request.user ?? ""
        finishNow(request, .ok(id: request.id, user: user, fields: fields), result: "ok", reason: nil)
    }

    /// Fails after the failure delay (Dovecot's shuffled batches); the request leaves the table at once,
    /// so a CONT meanwhile gets "timed out" as with Dovecot.
    private func fail(
        _ request: Request, reason: String, code: FailCode? = nil, clientReason: String? = nil, delayed: Bool = true
    ) {
        guard requests[request.id] === request else { return }
        // `debug` (doveadm, saslgate auth test --explain) asks which passdb answered.
        let extra: [(String, String?)] = request.command.debug ? request.passdb.map { [("passdb", $0)] } ?? [] : []
        let line = ServerMessage.fail(id: request.id, user: request.user, code: code, reason: clientReason, fields: extra)
        requests[request.id] = nil
        var delay = service.settings.failureDelay
        if delayed && !request.command.noPenalty {
            // An authentication failure: count it; the delay escalates with repeated failures.
            delay = service.penalty.recordFailure(ip: request.command.remoteIP, user: request.penaltyUser, password: request.failedPassword)
        }
        request.failedPassword = nil
        log(request, result: "failed", reason: reason, delay: delayed ? delay : nil)
        guard delayed, delay > 0 else {
            send(line)
            return
        }
        delayedFailures.append(DelayedFailure(due: io.now() + delay, line: line.encoded()))
        // Memory bound: a client that floods failing requests gets its oldest failures early rather
        // than growing the queue without limit (it stays bounded by max_pending_requests).
        if delayedFailures.count > service.settings.maxPendingRequests {
            io.send(delayedFailures.removeFirst().line)
        }
        armFailureTimer()
    }

    private func finishNow(_ request: Request, _ message: ServerMessage, result: String, reason: String?) {
        requests[request.id] = nil
        send(message)
        log(request, result: result, reason: reason)
    }

    /// Granularity of failure release, as Dovecot's 0.5 s flush timer.
    static let failureFlushInterval = 0.5

    private func armFailureTimer() {
        guard failureTimer == nil, !closed else { return }
        failureTimer = io.schedule(after: Self.failureFlushInterval) { [weak self] in
            self?.flushFailures()
        }
    }

    private func flushFailures() {
        failureTimer = nil
        let now = io.now()
        var due: [[UInt8]] = []
        delayedFailures.removeAll { failure in
            guard failure.due <= now else { return false }
            due.append(failure.line)
            return true
        }
        due.shuffle()
        if !due.isEmpty { io.send(due.flatMap { $0 }) }
        if !delayedFailures.isEmpty { armFailureTimer() }
    }

    /// Requests older than `request_timeout` are dropped silently (Dovecot: 150 s, protocol.md §2.8).
    private func armSweep() {
        guard sweepTimer == nil, !closed else { return }
        let interval = max(1, service.settings.requestTimeout / 10)
        sweepTimer = io.schedule(after: interval) { [weak self] in
            guard let self else { return }
            self.sweepTimer = nil
            let limit = self.io.now() - self.service.settings.requestTimeout
            for request in self.requests.values where request.started <= limit {
                self.requests[request.id] = nil
                self.log(request, result: "timeout", reason: "request timed out waiting for the client")
            }
            if !self.requests.isEmpty { self.armSweep() }
        }
    }

    private func send(_ message: ServerMessage) {
        guard !closed else { return }
        io.send(message.encoded())
    }

    // MARK: - Logging

    /// One line per finished request: what an admin and fail2ban grep for. Never a password or payload.
    /// Built only when its level is enabled; the metrics are counted either way.
    private func log(_ request: Request, result: String, reason: String?, delay: Double? = nil) {
        let seconds = io.now() - request.started
        service.metrics?.requestFinished(
            result: result, mechanism: request.descriptor.name, passdb: request.passdb, seconds: seconds)
        let level: Logger.Level = result == "ok" ? .info : .notice
        let sink = service.requestLog
        guard sink.isEnabled(level) else { return }
        let c = request.command
        let record = AuthLogRecord(
            result: result, user: request.user.map { sanitizeForLog($0) } ?? "",
            authcid: request.authcid.map { sanitizeForLog($0) }, mechanism: request.descriptor.name,
            service: sanitizeForLog(c.service, limit: 32), remoteIP: sanitizeForLog(c.remoteIP ?? "", limit: 64),
            localIP: sanitizeForLog(c.localIP ?? "", limit: 64), secured: c.secured, passdb: request.passdb,
            reason: reason.map { sanitizeForLog($0, limit: 200) },
            delayMS: delay.flatMap { $0 > 0 ? Int(($0 * 1000).rounded()) : nil },
            durationMS: Int((seconds * 1000).rounded()), conn: cuid, cpid: handshake == .ready ? clientPID : nil,
            id: request.id)
        sink.write(record, level: level)
    }

    private static func describe(_ message: ClientMessage) -> String {
        switch message {
        case .version(let a, let b): "VERSION \(a) \(b)"
        case .cpid(let p): "CPID \(p)"
        case .auth(let c): "AUTH \(c.id)"
        case .cont(let id, _): "CONT \(id)"
        case .cancel(let id): "CANCEL \(id)"
        }
    }
}
