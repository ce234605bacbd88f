public import Logging

/// One finished request as it is logged: what an admin and fail2ban grep for. Never a password or a
/// payload; client-supplied values are already sanitized (printable ASCII, bounded).
public struct AuthLogRecord: Sendable {
    public var result: String
    public var user: String
    /// Set when an authz rule let this identity act as `user`.
    public var authcid: String?
    public var mechanism: String
    public var service: String
    public var remoteIP: String
    public var localIP: String
    public var secured: Bool
    public var passdb: String?
    /// The app password that was used (its name, never the secret).
    public var app: String?
    public var reason: String?
    public var delayMS: Int?
    public var durationMS: Int
    public var conn: UInt64
    /// The client's CPID once the handshake gave it.
    public var cpid: UInt32?
    public var id: UInt32
    /// The auth client's address (`HOST:PORT`) when it connected over TCP; nil on the Unix socket.
    public var peer: String?

    public init(
        result: String, user: String, authcid: String?, mechanism: String, service: String, remoteIP: String,
        localIP: String, secured: Bool, passdb: String?, app: String? = nil, reason: String?, delayMS: Int?, durationMS: Int,
        conn: UInt64, cpid: UInt32?, id: UInt32, peer: String? = nil
    ) {
        self.result = result
        self.user = user
        self.authcid = authcid
        self.mechanism = mechanism
        self.service = service
        self.remoteIP = remoteIP
        self.localIP = localIP
        self.secured = secured
        self.passdb = passdb
        self.app = app
        self.reason = reason
        self.delayMS = delayMS
        self.durationMS = durationMS
        self.conn = conn
        self.cpid = cpid
        self.id = id
        self.peer = peer
    }

    /// The message part of the line: `auth ok`, `auth failed`, ...
    public var message: String { result == "ok" ? "auth ok" : "auth " + result }

    /// The keys of the line in their fixed order (fail2ban filters rely on it); the optional ones
    /// (`authcid`, `passdb`, `app`, `reason`, `delay_ms`, `cpid`, `peer`) are left out when absent. Other formatters
    /// that order metadata (`SaslgateLogHandler`) use this list too.
    public static let keyOrder = [
        "result", "user", "authcid", "mech", "service", "rip", "lip", "secured", "passdb", "app", "reason", "delay_ms",
        "duration_ms", "conn", "cpid", "id", "peer",
    ]

    /// One field's value: text, or a number (written without making a string).
    public enum Value {
        case text(String)
        case number(UInt64)

        public var string: String {
            switch self {
            case .text(let s): s
            case .number(let n): String(n)
            }
        }
    }

    /// The present fields, in `keyOrder`.
    public func forEachField(_ body: (String, Value) -> Void) {
        body("result", .text(result))
        body("user", .text(user))
        if let authcid { body("authcid", .text(authcid)) }
        body("mech", .text(mechanism))
        body("service", .text(service))
        body("rip", .text(remoteIP))
        body("lip", .text(localIP))
        body("secured", .text(secured ? "yes" : "no"))
        if let passdb { body("passdb", .text(passdb)) }
        if let app { body("app", .text(app)) }
        if let reason { body("reason", .text(reason)) }
        if let delayMS { body("delay_ms", .number(UInt64(max(0, delayMS)))) }
        body("duration_ms", .number(UInt64(max(0, durationMS))))
        body("conn", .number(conn))
        if let cpid { body("cpid", .number(UInt64(cpid))) }
        body("id", .number(UInt64(id)))
        if let peer { body("peer", .text(peer)) }
    }

    /// Appends ` key=value` for every field, quoted as `appendField` does.
    public func appendFields(to line: inout [UInt8]) {
        forEachField { key, value in
            switch value {
            case .text(let s): Self.appendField(key, s, to: &line)
            case .number(let n): Self.appendNumber(key, n, to: &line)
            }
        }
    }

    /// ` key=value`: a value with a space, `"`, a backslash or `=` is double-quoted, with `"` and backslash
    /// escaped; an empty value is `""`. The one quoting rule of every saslgated log line.
    public static func appendField(_ key: String, _ value: String, to line: inout [UInt8]) {
        line.append(0x20)
        line.append(contentsOf: key.utf8)
        line.append(0x3D)
        var value = value
        value.withUTF8 { bytes in
            if bytes.isEmpty {
                line.append(contentsOf: [0x22, 0x22])
                return
            }
            var plain = true
            for b in bytes where b == 0x20 || b == 0x22 || b == 0x5C || b == 0x3D {
                plain = false
                break
            }
            if plain {
                line.append(contentsOf: bytes)
                return
            }
            line.append(0x22)
            for b in bytes {
                if b == 0x22 || b == 0x5C { line.append(0x5C) }
                line.append(b)
            }
            line.append(0x22)
        }
    }

    /// ` key=digits`.
    static func appendNumber(_ key: String, _ value: UInt64, to line: inout [UInt8]) {
        line.append(0x20)
        line.append(contentsOf: key.utf8)
        line.append(0x3D)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var v = value
            var i = buffer.count
            repeat {
                i -= 1
                buffer[i] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
            } while v > 0
            line.append(contentsOf: buffer[i...])
        }
    }

    /// The same fields as swift-log metadata.
    public var metadata: Logger.Metadata {
        var out = Logger.Metadata(minimumCapacity: 16)
        forEachField { key, value in out[key] = .string(value.string) }
        return out
    }
}

/// Where the one line per finished request goes. The daemon writes it straight to its log stream in the
/// format of its swift-log handler (it is the hottest log line by far); everything else, and tests,
/// use `LoggerRequestLog`.
public protocol AuthRequestLog: Sendable {
    func isEnabled(_ level: Logger.Level) -> Bool
    func write(_ record: AuthLogRecord, level: Logger.Level)
}

/// The request log through an ordinary swift-log `Logger`.
public struct LoggerRequestLog: AuthRequestLog {
    public let logger: Logger

    public init(_ logger: Logger) {
        self.logger = logger
    }

    public func isEnabled(_ level: Logger.Level) -> Bool { logger.logLevel <= level }

    public func write(_ record: AuthLogRecord, level: Logger.Level) {
        logger.log(level: level, "\(record.message)", metadata: record.metadata)
    }
}
