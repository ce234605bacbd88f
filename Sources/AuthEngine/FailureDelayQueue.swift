/// The FAIL lines of one connection that wait out their failure delay (docs/PROTOCOL.md, "Request life
/// cycle"). As Dovecot does it: a timer every half second releases every line whose delay is over, the
/// whole batch in one write and in random order, so neither the order nor the moment of a FAIL tells
/// which check failed. Bounded: past `bound` lines the oldest goes out early, so a client that floods
/// failing requests cannot grow the queue.
final class FailureDelayQueue {
    /// How often due lines are released (Dovecot's flush timer).
    static let flushInterval = 0.5

    private struct Entry {
        var due: Double
        var line: [UInt8]
    }

    private var entries: [Entry] = []
    private var timer: (any ScheduledWork)?
    private var closed = false
    private let io: any ConnectionIO

    init(io: any ConnectionIO) {
        self.io = io
    }

    /// Lines waiting; each owes the client a reply.
    var count: Int { entries.count }

    /// Queues an encoded FAIL line to go out `delay` seconds from now (at the next flush after that).
    func add(_ line: [UInt8], delay: Double, bound: Int) {
        guard !closed else { return }
        entries.append(Entry(due: io.now() + delay, line: line))
        if entries.count > bound { io.send(entries.removeFirst().line) }
        armTimer()
    }

    /// The connection is gone: the waiting lines are dropped, the timer stops.
    func close() {
        closed = true
        entries.removeAll()
        timer?.cancel()
        timer = nil
    }

    private func armTimer() {
        guard timer == nil, !closed else { return }
        timer = io.schedule(after: Self.flushInterval) { [weak self] in self?.flush() }
    }

    private func flush() {
        timer = nil
        let now = io.now()
        var due: [[UInt8]] = []
        entries.removeAll { entry in
            guard entry.due <= now else { return false }
            due.append(entry.line)
            return true
        }
        due.shuffle()
        if !due.isEmpty { io.send(due.flatMap { $0 }) }
        if !entries.isEmpty { armTimer() }
    }
}
