import AuthCore
import PassdbSASLDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The work behind `saslgate app-password ...` on a sasldb store.
enum AppPasswordActions {
    static func requireSASLDB(_ table: TableLocation) throws(CLIError) {
        guard table.kind == .sasldb else {
            throw .failure("app passwords live in a sasldb store; give it with --db sasldb:PATH (\(table.path) is a passwd-file)")
        }
    }

    static func add(
        user name: String, name appName: String, services: String?, expires: String?, table: TableLocation, io: CommandIO,
        now: Int64 = SASLDBAppPasswords.now()
    ) throws(CLIError) {
        try requireSASLDB(table)
        let user = try SASLDBUserActions.user(name, table)
        let list = try SASLDBUserActions.run { () throws(SASLDBError) in try SASLDBAppPasswords.parseServices(services ?? "") }
        let expiry = try expires.map { text throws(CLIError) -> Int64 in now + (try lifetime(text)) }
        let created = try SASLDBUserActions.run { () throws(SASLDBError) in
            try SASLDBEditor(path: table.path).addAppPassword(user, name: appName, services: list, expires: expiry, now: now)
        }
        for w in created.warnings { io.err("warning: \(w)") }
        io.err(
            "added app password '\(sanitizeForLog(appName))' for '\(sanitizeForLog(user.description))' in \(table.path) (services: \(list.isEmpty ? "any" : list.joined(separator: ",")), expires: \(expiry.map(date) ?? "never")); it is shown once:")
        io.out(created.password.withBytes { String(decoding: $0, as: UTF8.self) })
    }

    static func list(user name: String, table: TableLocation, io: CommandIO) throws(CLIError) {
        try requireSASLDB(table)
        let user = try SASLDBUserActions.user(name, table)
        let entries = try SASLDBUserActions.run { () throws(SASLDBError) in try SASLDBEditor(path: table.path).appPasswords(of: user) }
        io.out("NAME\tSERVICES\tCREATED\tEXPIRES\tLAST-USED\tLAST-IP")
        for e in entries {
            let fields = [
                sanitizeForLog(e.name, limit: 64), e.services.isEmpty ? "any" : e.services.joined(separator: ","), date(e.created),
                e.expires.map(date) ?? "never", e.lastUsed.map(date) ?? "never", sanitizeForLog(e.lastIP ?? "-", limit: 64),
            ]
            io.out(fields.joined(separator: "\t"))
        }
    }

    static func revoke(user name: String, name appName: String, table: TableLocation, io: CommandIO) throws(CLIError) {
        try requireSASLDB(table)
        let user = try SASLDBUserActions.user(name, table)
        try SASLDBUserActions.run { () throws(SASLDBError) in try SASLDBEditor(path: table.path).revokeAppPassword(user, name: appName) }
        io.out("revoked app password '\(sanitizeForLog(appName))' of '\(sanitizeForLog(user.description))' in \(table.path)")
    }

    /// `90d`, `12w`, `24h`, `30m`: seconds, from one minute to ten years.
    static func lifetime(_ text: String) throws(CLIError) -> Int64 {
        let units: [Character: Int64] = ["m": 60, "h": 3600, "d": 86400, "w": 604_800]
        guard let unit = text.last.flatMap({ units[$0] }), let n = Int64(text.dropLast()), n > 0,
            n <= 3650 * 86400 / unit
        else {
            throw .failure("--expires '\(sanitizeForLog(text))' must be a lifetime like 90d, 12w or 24h (at most 10 years)")
        }
        return n * unit
    }

    /// `2026-12-05T18:41Z` (UTC).
    static func date(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var tm = tm()
        guard gmtime_r(&t, &tm) != nil else { return String(seconds) }
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min))Z"
    }
}
