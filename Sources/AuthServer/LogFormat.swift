#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// One line per event on stderr: `[timestamp] saslgated[pid]: level: message key=value ...`.
/// Under journald (`JOURNAL_STREAM` set) the timestamp is left to the journal and a `<N>` syslog
/// priority prefix is written instead. Keys come in a fixed order so fail2ban filters and admins can
/// rely on the layout; values with spaces or quotes are double-quoted.
public struct SaslgateLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let journald: Bool

    /// Keys that lead, in this order; others follow alphabetically.
    static let keyOrder = ["result", "user", "authcid", "mech", "service", "rip", "lip", "secured", "passdb", "reason", "delay_ms",
                           "duration_ms", "conn", "cpid", "id"]

    static let writeLock = Mutex(())

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
        self.journald = getenv("JOURNAL_STREAM") != nil
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = ""
        if journald {
            line += "<\(Self.syslogPriority(event.level))>"
        } else {
            line += Self.timestamp() + " "
        }
        line += "\(label)[\(getpid())]: \(event.level.name): \(event.message)"
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for key in Self.keyOrder {
            if let value = merged.removeValue(forKey: key) { line += " \(key)=\(Self.quote("\(value)"))" }
        }
        for key in merged.keys.sorted() {
            line += " \(key)=\(Self.quote("\(merged[key]!)"))"
        }
        line += "\n"
        Self.writeLock.withLock { _ in
            _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        }
    }

    static func quote(_ value: String) -> String {
        if value.isEmpty { return "\"\"" }
        guard value.contains(where: { $0 == " " || $0 == "\"" || $0 == "\\" || $0 == "=" }) else { return value }
        var out = "\""
        for c in value {
            if c == "\"" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out + "\""
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ width: Int = 2) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let ms = Int32(ts.tv_nsec / 1_000_000)
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1))-\(pad(tmv.tm_mday))T\(pad(tmv.tm_hour)):\(pad(tmv.tm_min)):\(pad(tmv.tm_sec)).\(pad(ms, 3))Z"
    }
}

extension Logger.Level {
    var name: String {
        switch self {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }
}
