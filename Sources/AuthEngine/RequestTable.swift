/// The unfinished requests of one connection, by the id the client chose (docs/PROTOCOL.md, "AUTH":
/// unique among the pending ones, free again once a request ended). Two bounds keep it small whatever
/// the client does:
/// - at most `max_pending_requests` entries: to make room, the oldest request that waits for the
///   client goes (Postfix never sends CANCEL, so its abandoned requests pile up on its one long-lived
///   connection); a request being worked on is never evicted;
/// - a request older than `request_timeout` (Dovecot: 150 s) is dropped without a reply by a sweep that
///   runs every tenth of that timeout while the table is not empty (docs/PROTOCOL.md, "Request life
///   cycle").
final class RequestTable {
    /// What `makeRoom` did.
    enum Room {
        /// The table was below its bound.
        case free
        /// This request was dropped to make room.
        case evicted(AuthRequest)
        /// Every pending request is being worked on: nothing could be dropped.
        case full
    }

    private var requests: [UInt32: AuthRequest] = [:]
    private let io: any ConnectionIO
    private let onExpired: (AuthRequest) -> Void
    private var sweepTimer: (any ScheduledWork)?
    private var closed = false
    /// `request_timeout` of the configuration in force; the next sweep uses it.
    var timeout: Double

    /// `io` gives the clock and the timer; `onExpired` hears of each request the sweep dropped.
    init(io: any ConnectionIO, timeout: Double, onExpired: @escaping (AuthRequest) -> Void) {
        self.io = io
        self.timeout = timeout
        self.onExpired = onExpired
    }

    var count: Int { requests.count }

    /// Requests being worked on (mechanism or passdb): each owes the client a reply.
    var busyCount: Int {
        var busy = 0
        for request in requests.values where request.state == .busy { busy += 1 }
        return busy
    }

    subscript(id: UInt32) -> AuthRequest? { requests[id] }

    /// True while `request` is the pending request of its id: not finished, cancelled, evicted or
    /// expired (a passdb answer for a request that is gone is dropped).
    func holds(_ request: AuthRequest) -> Bool { requests[request.id] === request }

    /// Drops the oldest request waiting for the client when the table has `limit` entries.
    func makeRoom(limit: Int) -> Room {
        guard requests.count >= limit else { return .free }
        guard let victim = requests.values.filter({ $0.state != .busy }).min(by: { $0.started < $1.started }) else {
            return .full
        }
        requests[victim.id] = nil
        return .evicted(victim)
    }

    /// Adds a request whose id is free (a duplicate is a protocol violation the caller refuses first).
    func insert(_ request: AuthRequest) {
        requests[request.id] = request
        armSweep()
    }

    /// Removes and returns the pending request with this id.
    func remove(id: UInt32) -> AuthRequest? {
        requests.removeValue(forKey: id)
    }

    /// Removes `request` if it is still pending; false when it already ended.
    func remove(_ request: AuthRequest) -> Bool {
        guard holds(request) else { return false }
        requests[request.id] = nil
        return true
    }

    /// The connection is gone: forgets every request and stops the sweep. Returns how many were pending.
    func close() -> Int {
        closed = true
        sweepTimer?.cancel()
        sweepTimer = nil
        defer { requests.removeAll() }
        return requests.count
    }

    private func armSweep() {
        guard sweepTimer == nil, !closed else { return }
        sweepTimer = io.schedule(after: max(1, timeout / 10)) { [weak self] in self?.sweep() }
    }

    private func sweep() {
        sweepTimer = nil
        let limit = io.now() - timeout
        let expired = requests.values.filter { $0.started <= limit }
        for request in expired {
            requests[request.id] = nil
            onExpired(request)
        }
        if !requests.isEmpty { armSweep() }
    }
}
