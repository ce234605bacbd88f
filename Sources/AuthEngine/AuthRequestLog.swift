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
    public var reason: String?
    public var delayMS: Int?
    public var durationMS: Int
    public var conn: UInt64
    /// The client's CPID once the handshake gave it.
    public var cpid: UInt32?
    public var id: UInt32

    public init(
        result: String, user: String, authcid: String?, mechanism: String, service: String, remoteIP: String,
        localIP: String, secured: Bool, passdb: String?, reason: String?, delayMS: Int?, durationMS: Int, conn: UInt64,
        cpid: UInt32?, id: UInt32
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
        self.reason = reason
        self.delayMS = delayMS
        self.durationMS = durationMS
        self.conn = conn
        self.cpid = cpid
        self.id = id
    }

    /// The message part of the line: `auth ok`, `auth failed`, ...
    public var message: String { result == "ok" ? "auth ok" : "auth " + result }

    /// The fields in their fixed order (fail2ban filters rely on it): `result user authcid mech service
    /// rip lip secured passdb reason delay_ms duration_ms conn cpid id`; absent optional fields are left out.
    public func forEachField(_ body: (String, String) -> Void) {
        body("result", result)
        body("user", user)
        if let authcid { body("authcid", authcid) }
        body("mech", mechanism)
        body("service", service)
        body("rip", remoteIP)
        body("lip", localIP)
        body("secured", secured ? "yes" : "no")
        if let passdb { body("passdb", passdb) }
        if let reason { body("reason", reason) }
        if let delayMS { body("delay_ms", String(delayMS)) }
        body("duration_ms", String(durationMS))
        body("conn", String(conn))
        if let cpid { body("cpid", String(cpid)) }
        body("id", String(id))
    }

    /// Appends ` key=value` for every field, in the order of `forEachField`, quoted as `appendField` does.
    public func appendFields(to line: inout [UInt8]) {
        Self.appendField("result", result, to: &line)
        Self.appendField("user", user, to: &line)
        if let authcid { Self.appendField("authcid", authcid, to: &line) }
        Self.appendField("mech", mechanism, to: &line)
        Self.appendField("service", service, to: &line)
        Self.appendField("rip", remoteIP, to: &line)
        Self.appendField("lip", localIP, to: &line)
        Self.appendField("secured", secured ? "yes" : "no", to: &line)
        if let passdb { Self.appendField("passdb", passdb, to: &line) }
        if let reason { Self.appendField("reason", reason, to: &line) }
        if let delayMS { Self.appendNumber("delay_ms", UInt64(max(0, delayMS)), to: &line) }
        Self.appendNumber("duration_ms", UInt64(max(0, durationMS)), to: &line)
        Self.appendNumber("conn", conn, to: &line)
        if let cpid { Self.appendNumber("cpid", UInt64(cpid), to: &line) }
        Self.appendNumber("id", UInt64(id), to: &line)
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
        forEachField { key, value in out[key] = .string(value) }
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
