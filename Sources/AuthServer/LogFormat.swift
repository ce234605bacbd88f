#if canImport(Glibc)
import Glibc
#endif
import AuthEngine
import Logging
import NIOPosix
import Synchronization

/// One line per event on stderr: `[timestamp] saslgated[pid]: level: message key=value ...`.
/// Under journald (`JOURNAL_STREAM` set) the timestamp is left to the journal and a `<N>` syslog
/// priority prefix is written instead. Keys come in a fixed order so fail2ban filters and admins can
/// rely on the layout; values with spaces or quotes are double-quoted.
public struct SaslgateLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let lineFormat: LogLineFormat

    /// Keys that lead, in this order (those of the per-request line); others follow alphabetically.
    static let keyOrder = AuthLogRecord.keyOrder
    static let orderedKeys = Set(keyOrder)

    public init(label: String, level: Logger.Level) {
        self.init(level: level, lineFormat: LogLineFormat(label: label))
    }

    init(level: Logger.Level, lineFormat: LogLineFormat) {
        self.logLevel = level
        self.lineFormat = lineFormat
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The event's metadata wins over the handler's for the same key; keys in `keyOrder` first, then
    /// the rest sorted.
    public func log(event: LogEvent) {
        var line = format(event.level, message: event.message.description, metadata: event.metadata)
        LogLineFormat.emit(&line)
    }

    /// The line without its LF.
    func format(_ level: Logger.Level, message: String, metadata eventMetadata: Logger.Metadata?) -> [UInt8] {
        var line = lineFormat.begin(level, message: message)
        let extra = eventMetadata ?? [:]
        for key in Self.keyOrder {
            if let value = extra[key] ?? metadata[key] { LogLineFormat.append(key, value, to: &line) }
        }
        var others: [String] = []
        for key in extra.keys where !Self.orderedKeys.contains(key) { others.append(key) }
        for key in metadata.keys where !Self.orderedKeys.contains(key) && extra[key] == nil { others.append(key) }
        for key in others.sorted() { LogLineFormat.append(key, extra[key] ?? metadata[key]!, to: &line) }
        return line
    }
}

/// The per-request line (`AuthLogRecord`), formatted straight into bytes exactly as
/// `SaslgateLogHandler` formats the same fields given as metadata, without building a dictionary: it is
/// by far the most frequent line (one per authentication).
///
/// On an event-loop thread the lines are gathered per thread and written with one `write(2)` when the
/// loop has handled the current batch of ready connections (a task queued for the end of the tick), so
/// a burst of requests costs one write and one lock, not one each and two threads fighting over the
/// lock. Elsewhere (tests, other threads) a line is written at once. A line waits at most one loop tick;
/// only a crash in that window can lose it.
struct StderrRequestLog: AuthRequestLog {
    let level: Logger.Level
    let lineFormat: LogLineFormat
    private let batches = ThreadSpecificVariable<LineBatch>()
    /// A batch larger than this is written at once.
    static let maxBatch = 32 * 1024

    final class LineBatch: @unchecked Sendable {  // only ever touched by its own thread
        var bytes: [UInt8] = []
        var flushQueued = false
    }

    init(level: Logger.Level, lineFormat: LogLineFormat) {
        self.level = level
        self.lineFormat = lineFormat
    }

    func isEnabled(_ level: Logger.Level) -> Bool { self.level <= level }

    /// The line without its LF.
    func format(_ record: AuthLogRecord, level: Logger.Level) -> [UInt8] {
        var line = lineFormat.begin(level, message: record.message)
        record.appendFields(to: &line)
        return line
    }

    func write(_ record: AuthLogRecord, level: Logger.Level) {
        var line = format(record, level: level)
        line.append(UInt8(ascii: "\n"))
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            LogLineFormat.writeLocked(line)
            return
        }
        let batch: LineBatch
        if let existing = batches.currentValue {
            batch = existing
        } else {
            batch = LineBatch()
            batches.currentValue = batch
        }
        batch.bytes.append(contentsOf: line)
        if batch.bytes.count >= Self.maxBatch {
            LogLineFormat.writeLocked(batch.bytes)
            batch.bytes.removeAll(keepingCapacity: true)
        } else if !batch.flushQueued {
            batch.flushQueued = true
            loop.execute {
                batch.flushQueued = false
                guard !batch.bytes.isEmpty else { return }
                LogLineFormat.writeLocked(batch.bytes)
                batch.bytes.removeAll(keepingCapacity: true)
            }
        }
    }
}

/// The pieces of one log line, as bytes.
struct LogLineFormat: Sendable {
    /// `label[pid]: `, made once (the daemon never forks after start).
    let prefix: [UInt8]
    let journald: Bool

    static let writeLock = Mutex(())

    /// `journald` nil: decided by `JOURNAL_STREAM` in the environment.
    init(label: String, journald: Bool? = nil) {
        self.prefix = Array("\(label)[\(getpid())]: ".utf8)
        self.journald = journald ?? (getenv("JOURNAL_STREAM") != nil)
    }

    /// `<N>` or the timestamp, then `label[pid]: level: message`.
    func begin(_ level: Logger.Level, message: String) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(320)
        if journald {
            line.append(UInt8(ascii: "<"))
            line.append(contentsOf: String(SaslgateLogHandler.syslogPriority(level)).utf8)
            line.append(UInt8(ascii: ">"))
        } else {
            Self.appendTimestamp(to: &line)
            line.append(UInt8(ascii: " "))
        }
        line.append(contentsOf: prefix)
        line.append(contentsOf: level.name.utf8)
        line.append(contentsOf: ": ".utf8)
        line.append(contentsOf: message.utf8)
        return line
    }

    /// ` key=value`, with the quoting rule of `AuthLogRecord.appendField`.
    static func append(_ key: String, _ value: Logger.MetadataValue, to line: inout [UInt8]) {
        switch value {
        case .string(let s): AuthLogRecord.appendField(key, s, to: &line)
        default: AuthLogRecord.appendField(key, value.description, to: &line)
        }
    }

    /// Ends the line and writes it.
    static func emit(_ line: inout [UInt8]) {
        line.append(UInt8(ascii: "\n"))
        writeLocked(line)
    }

    /// Writes whole lines with one `write(2)` under a process-wide lock, so lines never interleave (stderr
    /// may be a plain file opened without O_APPEND). A full or closed stderr drops the lines rather than
    /// block the daemon.
    static func writeLocked(_ bytes: [UInt8]) {
        writeLock.withLock { _ in
            bytes.withUnsafeBufferPointer { buffer in
                var done = 0
                while done < buffer.count {
                    let n = write(2, buffer.baseAddress! + done, buffer.count - done)
                    if n > 0 {
                        done += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        break
                    }
                }
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
    static func appendTimestamp(to line: inout [UInt8]) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func digits(_ v: Int32, _ width: Int) {
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var v = v
            while divisor > 0 {
                line.append(UInt8(ascii: "0") + UInt8((v / divisor) % 10))
                v %= divisor
                divisor /= 10
            }
        }
        digits(tmv.tm_year + 1900, 4)
        line.append(UInt8(ascii: "-"))
        digits(tmv.tm_mon + 1, 2)
        line.append(UInt8(ascii: "-"))
        digits(tmv.tm_mday, 2)
        line.append(UInt8(ascii: "T"))
        digits(tmv.tm_hour, 2)
        line.append(UInt8(ascii: ":"))
        digits(tmv.tm_min, 2)
        line.append(UInt8(ascii: ":"))
        digits(tmv.tm_sec, 2)
        line.append(UInt8(ascii: "."))
        digits(Int32(ts.tv_nsec / 1_000_000), 3)
        line.append(UInt8(ascii: "Z"))
    }
}

extension SaslgateLogHandler {
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
