import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// What a database error means for saslgate, and its words for the log (never a password: PostgreSQL
/// does not echo the password, and neither the query's values nor the connect string are shown).
enum PgErrors {
    enum Kind {
        /// The host cannot be used now (refused, closed, shutting down, out of connections): try the next.
        case host
        /// The server answered with an error about the statement (syntax, permissions, types): the host
        /// works, the configuration is wrong.
        case statement
    }

    /// Where the error came from. Making a connection (connect, TLS, authentication, the database
    /// name, `CONNECT` permission) failed: this host cannot be used now, whatever the SQLSTATE. On a
    /// working connection (prepare, execute): a connection exception (08), a shutdown (57P) or a lack of
    /// resources (53) is the host's, any other server error is the statement's; a closed connection or
    /// a protocol error is the host's.
    static func kind(_ error: any Error) -> Kind {
        if error is ConnectFailure { return .host }
        if error is ParameterTypeRefused { return .statement }
        if let state = sqlState(error) {
            if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") { return .host }
            return .statement
        }
        return .host
    }

    /// The SQLSTATE of a server error, from either of postgres-nio's error types (its older API, used
    /// for prepared statements, turns `PSQLError` into `PostgresError`).
    static func sqlState(_ error: any Error) -> String? {
        if let e = error as? ConnectFailure { return sqlState(e.underlying) }
        if let e = error as? PSQLError, e.code == .server { return e.serverInfo?[.sqlState] }
        if case .server(let message)? = error as? PostgresError { return message.fields[.sqlState] }
        return nil
    }

    /// The server refused a new connection for its `max_connections` or the role's `CONNECTION LIMIT`
    /// (SQLSTATE 53300): the host works, it has no room for one more connection.
    static func isConnectionLimit(_ error: any Error) -> Bool {
        sqlState(error) == "53300"
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? ConnectFailure { return describe(e.underlying) }
        if let e = error as? ParameterTypeRefused { return e.description }
        if case .server(let m)? = error as? PostgresError {
            let state = m.fields[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return "\(m.fields[.message] ?? "error")\(state)"
        }
        if case .connectionClosed? = error as? PostgresError { return "the server closed the connection" }
        if let e = error as? PSQLError {
            if let info = e.serverInfo {
                let message = info[.message] ?? "error"
                let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return "\(message)\(state)"
            }
            if let underlying = e.underlying {
                if let tls = tlsProblem(underlying) { return tls }
                return "\(e.code): \(underlying)"
            }
            return "\(e.code)"
        }
        if let e = error as? NIOConnectionError {
            if let dns = e.dnsAError ?? e.dnsAAAAError { return "cannot resolve \(e.host): \(dns)" }
            let why = e.connectionErrors.map { "\($0.target): \($0.error)" }.joined(separator: "; ")
            return "cannot connect: " + (why.isEmpty ? "no address for \(e.host)" : why)
        }
        if case .connectTimeout(let t)? = error as? ChannelError {
            return "cannot connect: no answer within \(t.nanoseconds / 1_000_000) ms (connect_timeout)"
        }
        if let tls = tlsProblem(error) { return tls }
        let text = String(describing: error)
        return text.count > 200 ? String(text.prefix(200)) + "..." : text
    }

    /// The TLS handshake's failure in an administrator's words (sslmode=require / verify-full).
    static func tlsProblem(_ error: any Error) -> String? {
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS: the server's certificate was not signed by the CA in sslrootcert (certificate verify failed); give the CA that signed it"
        }
        if text.contains("failedToValidateHostname") || text.contains("HOSTNAME_MISMATCH") {
            return "TLS: the server's certificate does not name this host (sslmode=verify-full); connect by a name the certificate holds"
        }
        if text.contains("handshakeFailed") || text.contains("NIOSSL") {
            return "TLS handshake with the database failed: " + String(text.prefix(160))
        }
        return nil
    }
}

/// `password_query` compares a variable with a type saslgated cannot send it as (see
/// `PgLoopPool.parameterTypes`): the statement's problem, with the fix in its words.
struct ParameterTypeRefused: Error, CustomStringConvertible {
    let description: String
}

/// A connection could not be made (connect, TLS, authentication): always the host's problem.
struct ConnectFailure: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { String(describing: underlying) }
}

/// Runs `operation` but gives up at `deadline`: nil then, and the operation is cancelled and left to
/// end on its own. The caller never waits past the deadline. Used for a host's probe (a connection
/// attempt); lookups have their own deadline sweep (`PgLoopPool`).
func untilDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant, on loop: any EventLoop, _ operation: @escaping @Sendable () async -> T
) async -> T? {
    let remaining = ContinuousClock.now.duration(to: deadline)
    if remaining <= .zero { return nil }
    let race = Race<T>()
    return await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        race.start(continuation)
        let timer = loop.scheduleTask(in: .nanoseconds(remaining.nanoseconds)) { race.finish(nil) }
        let work = Task {
            let value = await operation()
            race.finish(value)
        }
        race.attach(work: work, timer: timer)
    }
}

/// The shared end of `untilDeadline`'s task and timer: the first to finish resumes the caller and
/// cancels the other.
private final class Race<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, Never>?
        var work: Task<Void, Never>?
        var timer: Scheduled<Void>?
        var done = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T?, Never>) {
        state.withLock { $0.continuation = continuation }
    }

    func attach(work: Task<Void, Never>, timer: Scheduled<Void>) {
        let finished = state.withLock { s -> Bool in
            s.work = work
            s.timer = timer
            return s.done
        }
        if finished {
            work.cancel()
            timer.cancel()
        }
    }

    func finish(_ value: T?) {
        let (continuation, work, timer) = state.withLock { s -> (CheckedContinuation<T?, Never>?, Task<Void, Never>?, Scheduled<Void>?) in
            guard !s.done else { return (nil, nil, nil) }
            s.done = true
            defer { s.continuation = nil; s.work = nil; s.timer = nil }
            return (s.continuation, s.work, s.timer)
        }
        guard let continuation else { return }
        if value == nil { work?.cancel() } else { timer?.cancel() }
        continuation.resume(returning: value)
    }
}

extension Duration {
    /// Whole nanoseconds.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
