import CEpoll
#if canImport(Glibc)
import Glibc
#endif

// --engine epoll (the default): one thread drives many persistent connections with non-blocking
// sockets in one epoll set (level-triggered), instead of a blocking thread per connection. At 64
// connections on 2 cores the thread-per-connection loop spends a good part of a core on wakeups and
// context switches, CPU the server under test would otherwise have.
//
// What is sent and checked is LoadWorker's business, unchanged: this file only moves bytes and keeps
// time. Per readiness event a connection gets one read(2) of whatever is there; each complete line
// goes to `LoadWorker.handle`, the slot it frees gets a new request through `issue` (while
// `shouldContinue`), and then what the worker accumulated in `out` is written with one write(2). If
// the socket is full, the rest stays in `out` and the connection waits for EPOLLOUT. The connect and
// the handshake stay blocking, done for all of a loop's connections before the loop starts.

// MARK: - epoll

/// The few epoll(7) calls the loop makes, from <sys/epoll.h> (the `CEpoll` system module).
struct Epoll {
    static let IN = UInt32(EPOLLIN.rawValue)
    static let OUT = UInt32(EPOLLOUT.rawValue)
    static let ERR = UInt32(EPOLLERR.rawValue)
    static let HUP = UInt32(EPOLLHUP.rawValue)
    static let CTL_ADD = EPOLL_CTL_ADD
    static let CTL_MOD = EPOLL_CTL_MOD
    static let eventSize = MemoryLayout<epoll_event>.stride

    /// Always available on Linux; failable so the loop reports a missing epoll like any other error.
    init?() {}

    func create() -> Int32 { epoll_create1(Int32(EPOLL_CLOEXEC)) }

    /// EPOLL_CTL_ADD / _MOD of `fd` for `events`, with `data` as the event's data (a u64).
    func control(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) -> Int32 {
        var event = epoll_event()
        event.events = events
        event.data.u64 = data
        return epoll_ctl(epfd, op, fd, &event)
    }

    /// epoll_wait into `buffer` (room for `capacity` events of `eventSize` bytes).
    func wait(_ epfd: Int32, _ buffer: UnsafeMutableRawPointer, capacity: Int, timeoutMs: Int32) -> Int32 {
        epoll_wait(epfd, buffer.assumingMemoryBound(to: epoll_event.self), Int32(capacity), timeoutMs)
    }

    /// The k-th event of a `wait` buffer: its events mask and its data.
    static func event(_ buffer: UnsafeMutableRawPointer, _ k: Int) -> (events: UInt32, data: UInt64) {
        let e = buffer.assumingMemoryBound(to: epoll_event.self)[k]
        return (e.events, e.data.u64)
    }
}

// MARK: - The loop

/// One event-loop thread: its share of the workers, their sockets, one epoll set.
final class EventLoop {
    /// A connection in the loop.
    private final class Connection {
        let worker: LoadWorker
        /// Place in `conns`: the epoll event's data.
        let index: Int
        let fd: Int32
        /// The handshake's reader, reused (it keeps anything buffered after DONE).
        let reader: LineReader
        /// Bytes at the front of `worker.out` already written (nonzero only while the socket is full).
        var written = 0
        /// Registered for EPOLLOUT as well as EPOLLIN (the socket was full).
        var wantsWrite = false
        /// Last time bytes arrived (or the first requests went out): the --timeout clock.
        var lastRead: UInt64 = 0
        var open = true

        init(worker: LoadWorker, index: Int, fd: Int32, reader: LineReader) {
            self.worker = worker
            self.index = index
            self.fd = fd
            self.reader = reader
        }
    }

    private let workers: [LoadWorker]
    private var conns: [Connection] = []
    /// nil if the C library lacks epoll (then every connection fails with that error).
    private let epoll = Epoll()
    private var epfd: Int32 = -1
    /// Connections still open (requests in flight, or first requests not yet answered).
    private var live = 0
    private let timeoutNs: UInt64
    /// --coalesce-us: pause after each batch (0: none).
    private let coalesceNs: UInt64

    init(workers: [LoadWorker]) {
        self.workers = workers
        let o = workers.first?.plan.options
        timeoutNs = UInt64((o?.timeout ?? 15) * 1e9)
        coalesceNs = UInt64((o?.coalesceUs ?? 0) * 1000)
    }

    func run() {
        // A loop with a single connection (1 connection, or --threads >= --connections) just reads it,
        // blocking, as the thread engine does: waiting on one socket needs no epoll, and a blocking
        // read's wakeup is the cheaper one (against Dovecot at 1x1, poll and epoll both measured
        // ~20 us more per round trip than read on this 2-core VM).
        if workers.count == 1 {
            workers[0].run()
            return
        }
        // Blocking connect + handshake for every connection first (as runPersistent does, minus the
        // thread). A worker that fails here is aborted with its error counted, as there.
        for w in workers {
            guard let (fd, reader) = w.connectAndGreet() else {
                w.aborted = true
                continue
            }
            conns.append(Connection(worker: w, index: conns.count, fd: fd, reader: reader))
        }
        guard !conns.isEmpty else { return }
        epfd = epoll?.create() ?? -1
        guard let epoll, epfd >= 0 else {
            let why = epoll == nil ? "epoll functions not found in the C library" : "epoll_create1: \(errnoText())"
            for c in conns {
                c.worker.error(why)
                c.worker.aborted = true
                close(c.fd)
            }
            return
        }
        defer {
            for c in conns where c.open { close(c.fd) }
            close(epfd)
        }

        // Non-blocking, registered, first K requests out.
        let now0 = monoNow()
        for c in conns {
            live += 1
            let flags = fcntl(c.fd, F_GETFL)
            guard flags >= 0, fcntl(c.fd, F_SETFL, flags | O_NONBLOCK) == 0,
                control(Epoll.CTL_ADD, c, events: Epoll.IN)
            else {
                fail(c, "epoll registration: \(errnoText())")
                continue
            }
            let w = c.worker
            for s in 0..<w.slots.count where w.shouldContinue(now: now0) { w.issue(s, now: now0) }
            c.lastRead = now0
            if flush(c) && w.inFlight == 0 { finish(c) }
        }

        // The loop: until every connection has drained (or failed).
        let capacity = conns.count
        let events = UnsafeMutableRawPointer.allocate(byteCount: capacity * Epoll.eventSize, alignment: 8)
        defer { events.deallocate() }
        var nextCheck = now0 &+ timeoutNs
        while live > 0 {
            let now = monoNow()
            // Sleep at most until the earliest --timeout deadline (rounded up to whole ms).
            let waitMs = nextCheck > now ? Int32(min((nextCheck - now + 999_999) / 1_000_000, 3_600_000)) : 0
            let n = epoll.wait(epfd, events, capacity: capacity, timeoutMs: waitMs)
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                for c in conns where c.open { fail(c, "epoll_wait: \(errnoText(e))") }
                return
            }
            for k in 0..<Int(n) {
                let ev = Epoll.event(events, k)
                let c = conns[Int(ev.data)]
                guard c.open else { continue }  // closed earlier in this batch
                if ev.events & Epoll.OUT != 0 && c.wantsWrite {
                    guard flush(c) else { continue }
                }
                if ev.events & (Epoll.IN | Epoll.HUP | Epoll.ERR) != 0 {
                    readable(c)
                }
            }
            if monoNow() >= nextCheck { nextCheck = checkTimeouts() }
            // --coalesce-us: let replies gather before the next epoll_wait, so that one wakeup handles
            // several (the server then also reads several requests at once).
            if coalesceNs > 0 { sleepNanos(coalesceNs) }
        }
    }

    /// One read, every complete line handled (a freed slot gets its next request), then one write.
    private func readable(_ c: Connection) {
        let w = c.worker
        switch c.reader.fill() {
        case .data:
            // One timestamp per read: the lines in it arrived together.
            let now = monoNow()
            c.lastRead = now
            while let line = c.reader.bufferedLine() {
                if let s = w.handle(line, now: now), w.shouldContinue(now: now) {
                    w.issue(s, now: now)
                }
            }
            guard flush(c) else { return }
            if w.inFlight == 0 { finish(c) }
        case .wouldBlock:
            return
        case .eof:
            // (A connection with nothing in flight is closed before its next read, so never here.)
            w.error("server closed the connection with \(w.inFlight) requests in flight")
            w.errors += w.inFlight - 1
            w.aborted = true
            finish(c)
        case .error(let e):
            fail(c, "read: \(errnoText(e))")
        }
    }

    /// Writes what `out` holds past `written`. A full socket keeps the rest and arms EPOLLOUT; done,
    /// it disarms it. False when the connection failed (and is closed).
    private func flush(_ c: Connection) -> Bool {
        let w = c.worker
        let total = w.out.count
        if c.written < total {
            var n: Int
            repeat {
                n = w.out.withUnsafeBytes { write(c.fd, $0.baseAddress! + c.written, total - c.written) }
            } while n < 0 && errno == EINTR
            if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                fail(c, "write: \(errnoText())")
                return false
            }
            if n > 0 { c.written += n }
        }
        if c.written == total {
            w.out.removeAll(keepingCapacity: true)
            c.written = 0
            if c.wantsWrite {
                c.wantsWrite = false
                _ = control(Epoll.CTL_MOD, c, events: Epoll.IN)
            }
        } else if !c.wantsWrite {
            c.wantsWrite = true
            guard control(Epoll.CTL_MOD, c, events: Epoll.IN | Epoll.OUT) else {
                fail(c, "epoll_ctl: \(errnoText())")
                return false
            }
        }
        return true
    }

    /// Connections with requests in flight and nothing received for --timeout seconds fail, as a read
    /// with SO_RCVTIMEO does in the thread engine. Returns when to look again.
    private func checkTimeouts() -> UInt64 {
        let now = monoNow()
        var next = now &+ timeoutNs
        for c in conns where c.open {
            let deadline = c.lastRead &+ timeoutNs
            if deadline <= now {
                let w = c.worker
                w.error("no reply within \(w.plan.options.timeout)s with \(w.inFlight) requests in flight")
                w.errors += w.inFlight - 1
                w.aborted = true
                finish(c)
            } else {
                next = min(next, deadline)
            }
        }
        return next
    }

    /// EPOLL_CTL_ADD or _MOD for `c`, with its index as the event's data.
    private func control(_ op: Int32, _ c: Connection, events: UInt32) -> Bool {
        epoll?.control(epfd, op, c.fd, events: events, data: UInt64(c.index)) == 0
    }

    /// Counts one error, stops the worker and closes its connection (what is in flight is dropped
    /// without further errors, as in the thread engine).
    private func fail(_ c: Connection, _ what: String) {
        c.worker.error(what)
        c.worker.aborted = true
        finish(c)
    }

    private func finish(_ c: Connection) {
        guard c.open else { return }
        c.open = false
        close(c.fd)  // also leaves the epoll set
        live -= 1
    }
}
