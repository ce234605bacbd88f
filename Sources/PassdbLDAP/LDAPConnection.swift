import AuthCore
import CLDAP

#if canImport(Glibc)
import Glibc
#endif

/// What went wrong in one libldap call: its result code and text, the server's diagnostic message, and
/// the server. Never contains a password.
struct LDAPError: Error, Sendable, CustomStringConvertible {
    var code: Int32
    var message: String
    var uri: String

    /// The connection is gone or was never made (server down, connect or TLS failure, timeout): drop it,
    /// and count it against the server (back-off).
    var connectionLost: Bool {
        [LDAP_SERVER_DOWN, LDAP_CONNECT_ERROR, LDAP_TIMEOUT, LDAP_UNAVAILABLE, LDAP_BUSY].contains(code)
    }

    var description: String { "\(message) (LDAP \(code), \(uri))" }
}

/// One found entry: its DN and the values of the attributes asked for (kept in wiping `Secret`s: the
/// password attribute is among them).
struct LDAPEntry: Sendable {
    var dn: String
    var attributes: [String: [Secret]]

    /// The values of `name`, compared case-insensitively as LDAP attribute names are.
    func values(_ name: String) -> [Secret] {
        if let v = attributes[name] { return v }
        return attributes.first { $0.key.lowercased() == name.lowercased() }?.value ?? []
    }
}

/// One libldap connection (an `LDAP *`), used by one pool thread only. Every call blocks for at most the
/// settings' timeout (libldap's network and operation timeouts are set on the handle).
final class LDAPConnection {
    let uri: String
    private var ld: OpaquePointer?

    private init(uri: String, ld: OpaquePointer) {
        self.uri = uri
        self.ld = ld
    }

    deinit { close() }

    /// Connects to `uri` (TCP, then TLS for ldaps:// or StartTLS when configured) without binding.
    static func open(uri: String, settings: LDAPSettings) -> Result<LDAPConnection, LDAPError> {
        var handle: OpaquePointer?
        let rc = ldap_initialize(&handle, uri)
        guard rc == LDAP_SUCCESS, let handle else {
            return .failure(LDAPError(code: rc, message: "ldap_initialize: " + errorText(rc), uri: uri))
        }
        let connection = LDAPConnection(uri: uri, ld: handle)
        if let error = connection.configure(settings) { return .failure(error) }
        let connected = ldap_connect(handle)
        if connected != LDAP_SUCCESS { return .failure(connection.error(connected, "connect")) }
        if settings.startTLS && uri.lowercased().hasPrefix("ldap://") {
            let tls = ldap_start_tls_s(handle, nil, nil)
            if tls != LDAP_SUCCESS {
                var e = connection.error(tls, "StartTLS")
                // A failed StartTLS leaves the connection unusable: a temporary failure, like a server down.
                e.code = LDAP_CONNECT_ERROR
                return .failure(e)
            }
        }
        return .success(connection)
    }

    private func configure(_ settings: LDAPSettings) -> LDAPError? {
        var version = LDAP_VERSION3
        var network = timeval(settings.timeout)
        var operation = timeval(settings.timeout)
        var deref = settings.deref.libValue
        var requireCert = settings.requireCert.libValue
        var newContext: Int32 = 0
        // TCP keepalive: a connection a firewall or NAT dropped while idle is found dead within about
        // 90 s of silence (60 s idle, then 3 probes 10 s apart), so the next request opens a new one at
        // once instead of waiting out the operation timeout on a connection that cannot answer.
        var keepaliveIdle: Int32 = 60
        var keepaliveProbes: Int32 = 3
        var keepaliveInterval: Int32 = 10
        var checks: [(String, Int32)] = [
            ("protocol version", ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version)),
            ("network timeout", ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &network)),
            ("timeout", ldap_set_option(ld, LDAP_OPT_TIMEOUT, &operation)),
            ("deref", ldap_set_option(ld, LDAP_OPT_DEREF, &deref)),
            ("referrals", ldap_set_option(ld, LDAP_OPT_REFERRALS, settings.referrals ? saslgate_ldap_opt_on() : saslgate_ldap_opt_off())),
            ("restart", ldap_set_option(ld, LDAP_OPT_RESTART, saslgate_ldap_opt_off())),
            ("keepalive idle", ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &keepaliveIdle)),
            ("keepalive probes", ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &keepaliveProbes)),
            ("keepalive interval", ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &keepaliveInterval)),
            ("tls_require_cert", ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &requireCert)),
        ]
        if let ca = settings.caCertFile {
            checks.append(("tls_ca_cert_file", ca.withCString { ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, $0) }))
        }
        // The TLS settings above apply to this handle only once it has a TLS context of its own.
        checks.append(("TLS context", ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &newContext)))
        for (what, rc) in checks where rc != LDAP_OPT_SUCCESS {
            return LDAPError(code: LDAP_LOCAL_ERROR, message: "cannot set the \(what) option (libldap \(rc))", uri: uri)
        }
        return nil
    }

    /// A simple bind. nil `dn`: anonymous. The password goes to libldap only, never into a message.
    func bind(dn: String?, password: Secret?) -> LDAPError? {
        let rc: Int32 = (password ?? Secret([UInt8]())).withBytes { pw in
            var credential = berval(
                bv_len: ber_len_t(pw.count),
                bv_val: UnsafeMutablePointer(mutating: UnsafeRawPointer(pw.baseAddress)?.assumingMemoryBound(to: CChar.self)))
            return ldap_sasl_bind_s(ld, dn ?? "", nil, &credential, nil, nil, nil)
        }
        return rc == LDAP_SUCCESS ? nil : error(rc, "bind")
    }

    /// Searches and returns at most `sizeLimit` entries; `attributes` empty asks for none (`1.1`).
    /// LDAP_SIZELIMIT_EXCEEDED comes back as the entries found plus `truncated`.
    func search(
        base: String, scope: LDAPSettings.Scope, filter: String, attributes: [String], sizeLimit: Int32,
        timeout: Duration
    ) -> Result<(entries: [LDAPEntry], truncated: Bool), LDAPError> {
        let names = attributes.isEmpty ? ["1.1"] : attributes
        var cNames: [UnsafeMutablePointer<CChar>?] = names.map { strdup($0) } + [nil]
        defer { for p in cNames { free(p) } }
        var limit = timeval(timeout)
        var message: OpaquePointer?
        let rc = ldap_search_ext_s(ld, base, scope.libValue, filter, &cNames, 0, nil, nil, &limit, sizeLimit, &message)
        defer { if let message { ldap_msgfree(message) } }
        guard rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED else { return .failure(error(rc, "search")) }
        var entries: [LDAPEntry] = []
        var entry = ldap_first_entry(ld, message)
        while let e = entry {
            var dn = ""
            if let p = ldap_get_dn(ld, e) {
                dn = String(cString: p)
                ldap_memfree(p)
            }
            var values: [String: [Secret]] = [:]
            for name in attributes {
                guard let list = ldap_get_values_len(ld, e, name) else { continue }
                var i = 0
                var found: [Secret] = []
                while let bv = list[i] {
                    let count = Int(bv.pointee.bv_len)
                    if let base = bv.pointee.bv_val {
                        found.append(base.withMemoryRebound(to: UInt8.self, capacity: count) {
                            Secret(UnsafeBufferPointer(start: $0, count: count))
                        })
                    } else {
                        found.append(Secret([UInt8]()))
                    }
                    i += 1
                }
                ldap_value_free_len(list)
                values[name] = found
            }
            entries.append(LDAPEntry(dn: dn, attributes: values))
            entry = ldap_next_entry(ld, e)
        }
        return .success((entries, rc == LDAP_SIZELIMIT_EXCEEDED))
    }

    /// Unbinds and closes the socket. Safe to call twice.
    func close() {
        if let ld {
            ldap_unbind_ext_s(ld, nil, nil)
            self.ld = nil
        }
    }

    private func error(_ rc: Int32, _ operation: String) -> LDAPError {
        var text = "\(operation): " + LDAPConnection.errorText(rc)
        var diagnostic: UnsafeMutablePointer<CChar>?
        if ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == LDAP_OPT_SUCCESS, let diagnostic {
            let d = sanitizeForLog(String(cString: diagnostic), limit: 200)
            if !d.isEmpty { text += " (\(d))" }
            ldap_memfree(diagnostic)
        }
        return LDAPError(code: rc, message: text, uri: uri)
    }

    static func errorText(_ rc: Int32) -> String {
        guard let s = ldap_err2string(rc) else { return "LDAP error \(rc)" }
        return String(cString: s)
    }
}

extension timeval {
    init(_ d: Duration) {
        let (secs, atto) = d.components
        self.init(tv_sec: Int(secs), tv_usec: Int(atto / 1_000_000_000_000))
    }
}
