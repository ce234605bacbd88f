import AuthCore
import CLDAP

/// The connections of one pool thread, reused from request to request: one bound as the service
/// account for searches, one for the users' binds (so a user bind never changes the identity searches
/// run as, and searches need no re-bind). A connection that fails is dropped and the operation is tried
/// once more on a fresh one (the server may have restarted since the connection was made); a connect
/// tries the servers in order, skipping those backing off. Touched only by its own thread.
final class LDAPWorker {
    let settings: LDAPSettings
    let servers: LDAPServers
    /// True once the call this worker runs has been answered without it (its deadline passed): set by
    /// the pool around each call.
    var abandoned: () -> Bool = { false }
    private var searchConnection: LDAPConnection?
    private var authConnection: LDAPConnection?

    init(settings: LDAPSettings, servers: LDAPServers) {
        self.settings = settings
        self.servers = servers
    }

    /// Unbinds both connections.
    func close() {
        searchConnection?.close()
        searchConnection = nil
        authConnection?.close()
        authConnection = nil
    }

    /// What a search found.
    enum Found {
        case entry(LDAPEntry, uri: String)
        case none(uri: String)
        /// More than one entry: the filter does not name one user. Never guessed.
        case ambiguous(Int, uri: String)
    }

    /// Runs `filter` (already escaped) below `base` as the service account.
    func find(filter: String, attributes: [String]) -> Result<Found, LDAPError> {
        withConnection(\.searchConnection, bindAsService: true) { c in
            c.search(
                base: settings.base, scope: settings.scope, filter: filter, attributes: attributes, sizeLimit: 2,
                timeout: settings.timeout
            ).map { result in
                if result.entries.count > 1 || result.truncated { return .ambiguous(max(result.entries.count, 2), uri: c.uri) }
                if let e = result.entries.first { return .entry(e, uri: c.uri) }
                return .none(uri: c.uri)
            }
        }
    }

    /// Binds as `dn` with `password` on the auth connection. `.success(true)`: accepted; `false`: invalid
    /// credentials. The caller refuses empty passwords first (an empty simple bind is anonymous).
    func userBind(dn: String, password: Secret) -> Result<(accepted: Bool, uri: String), LDAPError> {
        precondition(!password.isEmpty, "an empty password must never reach a bind")
        // An empty DN is an anonymous bind, which some servers accept with any password (OpenLDAP's
        // `allow bind_anon_cred`): it proves nothing about the user. An entry without a DN (or a DN
        // template that rendered empty) is an internal failure, never a bind.
        guard !abandoned() else { return .failure(Self.abandonedBeforeBind(uri: "")) }
        guard !dn.isEmpty else {
            return .failure(LDAPError(code: LDAP_OTHER, message: "the user's DN is empty (an entry without a DN, or auth_bind_userdn rendered empty); no anonymous bind is made", uri: ""))
        }
        return withConnection(\.authConnection, bindAsService: false) { c in
            // Also before a second try on a fresh connection.
            guard !abandoned() else { return .failure(Self.abandonedBeforeBind(uri: c.uri)) }
            guard let error = c.bind(dn: dn, password: password) else { return .success((true, c.uri)) }
            if error.code == LDAP_INVALID_CREDENTIALS_CODE { return .success((false, c.uri)) }
            return .failure(error)
        }
    }

    private static func abandonedBeforeBind(uri: String) -> LDAPError {
        LDAPError(code: LDAP_TIMEOUT, message: "the request was answered at its deadline before the bind; the bind is not made", uri: uri)
    }

    /// Binds as the service account on a fresh connection (for `probe`).
    func checkServiceBind() -> Result<String, LDAPError> {
        searchConnection?.close()
        searchConnection = nil
        return withConnection(\.searchConnection, bindAsService: true) { .success($0.uri) }
    }

    // MARK: - Connections

    private func withConnection<T>(
        _ slot: ReferenceWritableKeyPath<LDAPWorker, LDAPConnection?>, bindAsService: Bool,
        _ body: (LDAPConnection) -> Result<T, LDAPError>
    ) -> Result<T, LDAPError> {
        var reused = self[keyPath: slot] != nil
        for _ in 0..<2 {
            let connection: LDAPConnection
            if let existing = self[keyPath: slot] {
                connection = existing
            } else {
                switch connect(bindAsService: bindAsService) {
                case .success(let c):
                    connection = c
                    self[keyPath: slot] = c
                case .failure(let e):
                    return .failure(e)
                }
            }
            let result = body(connection)
            guard case .failure(let e) = result, e.connectionLost else { return result }
            connection.close()
            self[keyPath: slot] = nil
            // A connection made just now failed: that server is in trouble; an old one may only have
            // gone stale (a restarted server), so try once more on a new connection either way.
            if !reused { servers.failed(connection.uri, error: e.message) }
            if !reused && servers.candidates().isEmpty { return result }
            reused = false
        }
        return .failure(LDAPError(code: LDAP_SERVER_DOWN, message: "the connection failed twice", uri: settings.uris.joined(separator: " ")))
    }

    /// Opens a connection to the first server that answers (and, for searches, accepts the service
    /// account's bind).
    private func connect(bindAsService: Bool) -> Result<LDAPConnection, LDAPError> {
        let candidates = servers.candidates()
        guard !candidates.isEmpty else {
            let reasons = servers.reasons()
            let lastReasons = reasons.isEmpty ? "" : "; last failure: \(reasons)"
            let wait = servers.nextRetry().map { " (next try in \(Int($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)) ms)" } ?? ""
            return .failure(LDAPError(
                code: LDAP_SERVER_DOWN, message: "every server failed recently and is backing off\(wait)\(lastReasons)",
                uri: settings.uris.joined(separator: " ")))
        }
        var last: LDAPError?
        for uri in candidates {
            switch LDAPConnection.open(uri: uri, settings: settings) {
            case .failure(let e):
                servers.failed(uri, error: e.message)
                last = e
                continue
            case .success(let c):
                if bindAsService, let dn = settings.bindDN {
                    if let e = c.bind(dn: dn, password: settings.bindPassword) {
                        c.close()
                        // Refused credentials or rights (13 confidentiality required, 48 inappropriate
                        // authentication, 49 invalid credentials, 50 insufficient access) are the
                        // configuration's: every server would say the same. Anything else (busy, other,
                        // unwilling, a lost connection) is this server's trouble: the next one is tried.
                        if ![13, 48, LDAP_INVALID_CREDENTIALS_CODE, 50].contains(e.code) {
                            servers.failed(uri, error: "service account bind: \(e.message)")
                            last = LDAPError(code: e.code, message: "service account bind: \(e.message)", uri: uri)
                            continue
                        }
                        return .failure(LDAPError(code: e.code, message: "service account bind as \(dn): \(e.message)", uri: uri))
                    }
                }
                servers.succeeded(uri)
                return .success(c)
            }
        }
        return .failure(last ?? LDAPError(code: LDAP_SERVER_DOWN, message: "no server", uri: ""))
    }
}

/// LDAP_INVALID_CREDENTIALS (49), named here because the header's macro is a cast Swift may not import.
let LDAP_INVALID_CREDENTIALS_CODE: Int32 = 0x31
