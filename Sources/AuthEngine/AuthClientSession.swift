import AuthCore
public import AuthProtocol
import Logging
import Passdb
import SASL

/// One client connection of the auth-client protocol: takes its lines, drives each request's mechanism
/// and the passdbs, and answers (docs/ARCHITECTURE.md, "The path of one AUTH request"). It coordinates small
/// parts with one job each: `ClientHandshake` (VERSION, CPID), `RequestTable` (ids, the pending bound,
/// the timeout sweep), `IdentityGate` (names, authz rules, penalty), `AuthFailure` (how each failure is
/// answered and logged) and `FailureDelayQueue` (delayed FAILs). Confined to the connection's executor;
/// all I/O goes through `ConnectionIO`.
public final class AuthClientSession {
    private let io: any ConnectionIO
    /// The configuration generation of the latest AUTH (`serviceProvider` is asked at each one, so a
    /// reload reaches connections that are already open).
    private var service: AuthService
    private let serviceProvider: () -> AuthService
    public let cuid: UInt64
    /// Peer description for logs (e.g. `pid=1234 uid=107`).
    private let peer: String
    /// The auth client's `HOST:PORT` when it came over TCP (the `peer` key of each request's line).
    private let peerAddress: String?
    /// This connection's logger (`conn`, and `cpid` once known), made when a line is logged: most
    /// connections never log one, and metadata costs allocations on every accept.
    private var logger: Logger {
        var logger = service.logger
        logger[metadataKey: "conn"] = "\(cuid)"
        if let pid = handshake.clientPID { logger[metadataKey: "cpid"] = "\(pid)" }
        return logger
    }
    private var handshake = ClientHandshake()
    private lazy var requests = RequestTable(io: io, timeout: configuration.requestTimeout) { [weak self] request in
        self?.log(request, .timeout, reason: "request timed out waiting for the client")
    }
    private lazy var delayedFailures = FailureDelayQueue(io: io)
    private var closed = false

    /// `serviceProvider` is asked for the current configuration at each new request (reloads).
    public init(
        io: any ConnectionIO, cuid: UInt64, peer: String, peerAddress: String? = nil,
        serviceProvider: @escaping () -> AuthService
    ) {
        self.io = io
        self.cuid = cuid
        self.peer = peer
        self.peerAddress = peerAddress
        self.serviceProvider = serviceProvider
        self.service = serviceProvider()
    }

    private var configuration: EngineConfiguration { service.configuration }

    public var pendingRequestCount: Int { requests.count }

    /// VERSION and CPID have been received.
    public var isHandshakeComplete: Bool { handshake.isComplete }

    /// Replies the server owes this client: requests being worked on plus failures waiting out the
    /// delay (requests waiting for the client are not owed anything).
    public var owedReplies: Int { requests.busyCount + delayedFailures.count }

    /// The greeting to send at once on accept.
    public func greeting(identity: ServerIdentity) -> [UInt8] {
        identity.greeting(service: service, cuid: cuid)
    }

    /// Handles one input line. A thrown violation means: log it and close the connection.
    public func handle(line: ArraySlice<UInt8>) throws(ProtocolViolation) {
        guard let command = try handshake.accept(ClientMessageParser.parse(line)) else { return }
        switch command {
        case .auth(let auth): try beginAuth(auth)
        case .cont(let id, let data): continueAuth(id: id, data: data)
        case .cancel(let id):
            if let request = requests.remove(id: id) { log(request, .cancelled, reason: "client cancelled") }
        }
    }

    /// The connection is gone: drop everything; nothing more is sent.
    public func connectionClosed() {
        closed = true
        let dropped = requests.close()
        if dropped > 0 {
            logger.info("client disconnected with \(dropped) pending requests", metadata: ["peer": "\(peer)"])
        }
        delayedFailures.close()
    }

    // MARK: - AUTH

    private func beginAuth(_ command: AuthCommand) throws(ProtocolViolation) {
        service = serviceProvider()
        requests.timeout = configuration.requestTimeout
        guard let descriptor = service.mechanism(named: command.mechanism) else {
            throw .unknownMechanism(sanitizeForLog(command.mechanism, limit: 40))
        }
        guard requests[command.id] == nil else { throw .duplicateID(command.id) }
        switch requests.makeRoom(limit: configuration.maxPendingRequests) {
        case .free: break
        case .evicted(let victim):
            log(victim, .dropped, reason: "too many pending requests; oldest abandoned request dropped")
        case .full:
            send(AuthFailure.tooManyRequests(id: command.id))
            logger.warning("request refused: too many pending requests", metadata: ["id": "\(command.id)"])
            return
        }
        let request = AuthRequest(
            command: command, descriptor: descriptor, mechanism: descriptor.make(service.mechanismContext),
            started: io.now())
        requests.insert(request)

        let initial: [UInt8]?
        switch command.initialResponse(clientMinor: handshake.clientMinor) {
        case .absent: initial = nil
        case .bytes(let bytes): initial = bytes
        case .invalidBase64:
            end(request, .invalidBase64InInitialResponse)
            return
        }
        if let refusal = service.gate.admit(command, mechanism: descriptor) {
            end(request, refusal)
            return
        }
        if let initial, !descriptor.allowsNUL, initial.contains(0) {
            end(request, .nulInClientData)
            return
        }
        run(request, request.mechanism.step(.start(initialResponse: initial)))
    }

    // MARK: - CONT

    private func continueAuth(id: UInt32, data: [UInt8]) {
        guard let request = requests[id] else {
            send(AuthFailure.unknownRequest(id: id))
            return
        }
        switch request.state {
        case .busy:
            end(request, .unexpectedContinuation)
        case .awaitingFinalAck:
            succeed(request, finalData: nil)
        case .awaitingResponse:
            guard let bytes = DovecotBase64.decode(data) else {
                end(request, .invalidBase64InContinuation)
                return
            }
            if !request.descriptor.allowsNUL && bytes.contains(0) {
                end(request, .nulInClientData)
                return
            }
            request.state = .busy
            run(request, request.mechanism.step(.response(bytes)))
        }
    }

    // MARK: - Mechanism steps

    private func run(_ request: AuthRequest, _ step: MechanismStep) {
        guard requests.holds(request) else { return }  // cancelled, timed out or connection gone
        switch step {
        case .challenge(let bytes):
            request.state = .awaitingResponse
            send(.cont(id: request.id, base64: DovecotBase64.encode(bytes)))
        case .verifyPlain(let identity, let password):
            guard let passdbRequest = admitIdentity(request, identity) else { return }
            request.state = .busy
            let chain = service.chain
            if let verdict = chain.verifyNow(passdbRequest, password: password) {
                // Answered without hashing or blocking ({PLAIN} entries, a cache hit): no task, no hop,
                // and the reply leaves with the others of this read.
                verified(request, verdict, passdbRequest, password: password)
                return
            }
            io.runAwaiting({ await chain.verify(passdbRequest, password: password) }) { [weak self] verdict in
                self?.verified(request, verdict, passdbRequest, password: password)
            }
        case .verifyToken(let identity, let token):
            guard let passdbRequest = admitIdentity(request, identity) else { return }
            request.state = .busy
            let chain = service.chain
            io.runAwaiting({ await chain.verifyToken(passdbRequest, token: token) }) { [weak self] result, passdb in
                self?.tokenChecked(request, result, passdb)
            }
        case .lookupCredentials(let identity, let scheme):
            guard let passdbRequest = admitIdentity(request, identity) else { return }
            request.state = .busy
            let chain = service.chain
            io.runAwaiting({ await chain.lookupCredentials(passdbRequest, scheme: scheme) }) { [weak self] result, passdb in
                self?.credentialsFound(request, result, passdb, scheme: scheme)
            }
        case .success(let finalData):
            if let finalData, !request.command.finalResponseOK {
                // Final server data without `final-resp-ok`: an extra CONT, the OK after the client's
                // next CONT (docs/PROTOCOL.md, "OK").
                request.state = .awaitingFinalAck
                send(.cont(id: request.id, base64: DovecotBase64.encode(finalData)))
            } else {
                succeed(request, finalData: finalData)
            }
        case .failure(let failure):
            if case .failed(let user, _) = failure, request.user == nil { request.user = user }
            end(request, request.tokenFailure ?? .mechanism(failure))
        }
    }

    /// Passes the mechanism's identity through the gate; the passdb request for the accepted name, or
    /// nil when the request ended there.
    private func admitIdentity(_ request: AuthRequest, _ identity: MechanismIdentity) -> PassdbRequest? {
        let verdict = service.gate.check(identity, for: request.command)
        request.adopt(verdict.names)
        if let refusal = verdict.refusal {
            end(request, refusal)
            return nil
        }
        return request.passdbRequest(user: verdict.names.user)
    }

    private func verified(_ request: AuthRequest, _ verdict: PassdbChain.Verdict, _ passdbRequest: PassdbRequest, password: Secret) {
        guard requests.holds(request) else { return }
        let result = verdict.result
        request.passdb = verdict.passdb
        request.appPassword = verdict.appPassword
        if result == .ok, verdict.appPassword == nil,
            configuration.requireAppPasswords.refusesMainPassword(realm: passdbRequest.realm, service: passdbRequest.service)
        {
            end(request, .mainPasswordRefused)
            return
        }
        guard let failure = AuthFailure.passdb(result) else {
            if case .okAs(let user) = result { request.user = user }
            run(request, request.mechanism.step(.verified))
            return
        }
        if result == .passwordMismatch { request.failedPassword = password }
        end(request, failure)
    }

    /// A token verdict: valid only when the token names the user the client logged in as (after the same
    /// name normalization); otherwise the mechanism sends its error challenge and the request ends with
    /// this failure after the client's dummy response.
    private func tokenChecked(_ request: AuthRequest, _ result: TokenResult, _ passdb: String?) {
        guard requests.holds(request) else { return }
        request.passdb = passdb
        let subject = service.gate.normalizedSubject(of: result)
        guard let failure = AuthFailure.token(result, normalizedSubject: subject, user: request.user) else {
            run(request, request.mechanism.step(.verified))
            return
        }
        if failure.kind == .temporary {
            end(request, failure)
            return
        }
        request.tokenFailure = failure
        run(request, request.mechanism.step(.tokenRejected))
    }

    private func credentialsFound(_ request: AuthRequest, _ result: CredentialLookup, _ passdb: String?, scheme: CredentialScheme) {
        guard requests.holds(request) else { return }
        request.passdb = passdb
        let credential: Credential
        switch AuthFailure.credentials(result, scheme: scheme) {
        case .success(let found): credential = found
        case .failure(let failure):
            end(request, failure)
            return
        }
        // Verifying a proof may mean thousands of hash rounds (SCRAM from a cleartext entry): never on
        // the event loop.
        let mechanism = request.mechanism
        io.runDetached({ () -> (any SASLMechanism, MechanismStep) in
            var m = mechanism
            let step = m.step(.credentials(credential))
            return (m, step)
        }) { [weak self] mechanism, step in
            guard let self, self.requests.holds(request) else { return }
            request.mechanism = mechanism
            self.run(request, step)
        }
    }

    // MARK: - Replies

    private func succeed(_ request: AuthRequest, finalData: [UInt8]?) {
        guard requests.remove(request) else { return }
        var fields: [(String, String?)] = []
        if request.command.debug, let passdb = request.passdb { fields.append(("passdb", passdb)) }
        if let app = request.appPassword { fields.append(("app", app)) }
        if let finalData { fields.append(("resp", DovecotBase64.encode(finalData))) }
        service.gate.recordSuccess(request)
        if let target = request.pendingAuthzid {
            request.user = target
        } else if request.descriptor.need == .nothing, let anonymous = configuration.anonymousUsername {
            request.user = anonymous
            fields.append(("anonymous", nil))
        }
        send(.ok(id: request.id, user: request.user ?? "", fields: fields))
        log(request, .ok, reason: nil)
    }

    /// Ends a request with a FAIL as `failure` says: at once, or after the failure delay (Dovecot's
    /// shuffled batches). The request leaves the table at once either way, so a CONT meanwhile gets
    /// "timed out" as with Dovecot.
    private func end(_ request: AuthRequest, _ failure: AuthFailure) {
        guard requests.remove(request) else { return }
        let line = failure.reply(id: request.id, user: request.user, passdb: request.passdb, debug: request.command.debug)
        guard failure.kind == .authentication else {
            send(line)
            log(request, .failed, reason: failure.logReason)
            return
        }
        let delay = service.gate.recordFailure(request)
        request.failedPassword = nil
        log(request, .failed, reason: failure.logReason, delay: delay)
        if delay > 0 {
            delayedFailures.add(line.encoded(), delay: delay, bound: configuration.maxPendingRequests)
        } else {
            send(line)
        }
    }

    private func send(_ message: ServerMessage) {
        guard !closed else { return }
        io.send(message.encoded())
    }

    /// One line per finished request (docs/LOGGING.md): what an admin and fail2ban grep for, never a
    /// password or payload. Built only when its level is enabled; the metrics count it either way.
    private func log(_ request: AuthRequest, _ result: RequestResult, reason: String?, delay: Double? = nil) {
        let seconds = io.now() - request.started
        service.metrics?.requestFinished(
            result: result.rawValue, mechanism: request.descriptor.name, passdb: request.passdb, seconds: seconds)
        let level: Logger.Level = result == .ok ? .info : .notice
        let sink = service.requestLog
        guard sink.isEnabled(level) else { return }
        var record = AuthLogRecord(
            request, result: result, reason: reason, delay: delay, seconds: seconds, conn: cuid, cpid: handshake.clientPID)
        record.peer = peerAddress
        sink.write(record, level: level)
    }
}
