import AuthProtocol

#if canImport(Glibc)
import Glibc
#endif

/// What every worker shares (read-only once the workers start).
struct LoadPlan: @unchecked Sendable {
    var options: Options
    var users: UserTable
    /// Measurement window (monotonic ns). In --requests mode `end` is unused.
    var start: UInt64
    var end: UInt64
    /// --requests: requests each worker sends after the warm-up.
    var quota: [Int]
    /// The AUTH line's constant parameters, encoded once: before rip= (`service=smtp\tnologin\tlip=...`)
    /// and after it (`secured\tno-penalty`), each field with its leading TAB.
    var authParameters: [UInt8]
    var authFlags: [UInt8]
}

/// One connection's closed loop (or, with --oneshot, one thread's loop of connections). With
/// --engine threads, `run` is the loop on a thread of its own; with --engine epoll, an `EventLoop`
/// (EventLoop.swift) does the I/O and calls `issue` and `handle` the same way `runPersistent` does.
final class LoadWorker: @unchecked Sendable {
    struct Slot {
        var id: UInt32 = 0
        var generation: UInt32 = 0
        var inFlight = false
        var good = true
        var user = 0
        var sent: UInt64 = 0
        /// LOGIN: CONTs answered so far.
        var step: UInt8 = 0
    }

    let index: Int
    let plan: LoadPlan
    var rng: FastRandom
    var slots: [Slot]
    /// Wrong-password requests: sent alongside, not holding one of the K slots (unless
    /// --closed-failures), keyed by id (ids with the top bit set).
    var detached: [UInt32: Slot] = [:]
    var nextDetachedID: UInt32 = 0
    var inFlight = 0
    var out: [UInt8] = []
    var scratch: [UInt8] = []
    /// rip= values are made here, then escaped into `out` like any other value.
    var ripScratch: [UInt8] = []
    var ripCounter: UInt32 = 0
    let ripBase: UInt32

    // Results.
    var latencies: [UInt64] = []
    var failLatencies: [UInt64] = []
    var completedInWindow = 0
    var okGood = 0
    var failBad = 0
    var errors = 0
    var errorSamples: [String] = []
    var measuredSent = 0
    var lastCompletion: UInt64 = 0
    var aborted = false

    init(index: Int, plan: LoadPlan) {
        self.index = index
        self.plan = plan
        self.rng = FastRandom(seed: plan.options.seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        self.slots = Array(repeating: Slot(), count: plan.options.pipeline)
        // --rip unique: each worker walks its own slice of 10.0.0.0/8.
        let slice = UInt32(1 << 24) / UInt32(max(plan.options.connections, 1))
        self.ripBase = UInt32(index) &* slice
        out.reserveCapacity(256 * plan.options.pipeline)
        latencies.reserveCapacity(1 << 16)
    }

    func error(_ what: String) {
        errors += 1
        if errorSamples.count < 5 { errorSamples.append(what) }
    }

    // MARK: request lines

    private func appendRip() {
        let o = plan.options
        let a: UInt32
        switch o.rip {
        case .none: return
        case .spread: a = UInt32(truncatingIfNeeded: rng.next() >> 40)
        case .unique:
            a = (ripBase &+ ripCounter) & 0xFF_FFFF
            ripCounter &+= 1
        }
        ripScratch.removeAll(keepingCapacity: true)
        ripScratch.append(ascii: "10.")
        ripScratch.appendDecimal(UInt64(a >> 16 & 255))
        ripScratch.append(0x2E)
        ripScratch.appendDecimal(UInt64(a >> 8 & 255))
        ripScratch.append(0x2E)
        ripScratch.appendDecimal(UInt64(a & 255))
        ripScratch.withUnsafeBufferPointer { ClientLineEncoder.parameter("rip", value: $0, into: &out) }
    }

    /// Appends one AUTH line for `id`.
    private func appendAuth(id: UInt32, user: Int, good: Bool) {
        ClientLineEncoder.authStart(id: id, mechanism: plan.options.mech, into: &out)
        out.append(contentsOf: plan.authParameters)
        appendRip()
        out.append(contentsOf: plan.authFlags)
        if plan.options.mech == "PLAIN" {
            plan.users.plainResponse(user, good: good, into: &scratch)
            scratch.withUnsafeBufferPointer { ClientLineEncoder.authEnd(initialResponse: $0, into: &out) }
        } else {
            ClientLineEncoder.authEnd(initialResponse: nil, into: &out)
        }
    }

    static let detachedBit: UInt32 = 0x8000_0000

    /// Starts a new request in slot `s` (appends its AUTH line to `out`). Wrong-password requests
    /// drawn on the way are sent as detached requests (they do not hold a slot: a client that fails
    /// does not keep the others waiting), so the slot always gets a good one -- unless
    /// --closed-failures, where the slot takes whatever was drawn.
    func issue(_ s: Int, now: UInt64) {
        let user = rng.below(plan.users.count)
        var good = plan.options.badShare <= 0 ? true : rng.unit() >= plan.options.badShare
        var u = user
        if !plan.options.closedFailures {
            var guardCount = 0
            while !good && guardCount < 1000 {
                nextDetachedID = (nextDetachedID &+ 1) & ~Self.detachedBit
                if nextDetachedID == 0 { nextDetachedID = 1 }
                let id = nextDetachedID | Self.detachedBit
                var d = Slot()
                d.id = id
                d.user = u
                d.good = false
                d.inFlight = true
                d.sent = now
                detached[id] = d
                inFlight += 1
                if now >= plan.start { measuredSent += 1 }
                appendAuth(id: id, user: u, good: false)
                u = rng.below(plan.users.count)
                good = plan.options.badShare >= 1 ? false : rng.unit() >= plan.options.badShare
                guardCount += 1
                if plan.options.requests != nil && now >= plan.start && measuredSent >= plan.quota[index] { return }
            }
        }
        let k = UInt32(slots.count)
        var g = slots[s].generation &+ 1
        if UInt64(g) * UInt64(k) + UInt64(s) + 1 >= UInt64(Self.detachedBit) { g = 0 }
        slots[s].generation = g
        let id = g * k + UInt32(s) + 1
        slots[s].id = id
        slots[s].user = u
        slots[s].good = good
        slots[s].step = 0
        slots[s].inFlight = true
        slots[s].sent = now
        inFlight += 1
        if now >= plan.start { measuredSent += 1 }
        appendAuth(id: id, user: u, good: good)
    }

    /// Whether a finished slot should start a new request.
    @inline(__always)
    func shouldContinue(now: UInt64) -> Bool {
        if aborted { return false }
        if plan.options.requests != nil {
            return now < plan.start || measuredSent < plan.quota[index]
        }
        return now < plan.end
    }

    /// Records a finished request (in the window or not).
    private func record(_ slot: Slot, ok: Bool, now: UInt64) {
        inFlight -= 1
        // Throughput counts answers that arrive inside the window; latency is taken for requests SENT
        // inside it (the run drains them afterwards), so slow answers are not left out.
        let answeredInWindow: Bool
        let sentInWindow: Bool
        if plan.options.requests != nil {
            answeredInWindow = slot.sent >= plan.start
            sentInWindow = answeredInWindow
        } else {
            answeredInWindow = now >= plan.start && now < plan.end
            sentInWindow = slot.sent >= plan.start && slot.sent < plan.end
        }
        if answeredInWindow {
            completedInWindow += 1
            lastCompletion = max(lastCompletion, now)
        }
        if sentInWindow {
            if slot.good { latencies.append(now &- slot.sent) } else { failLatencies.append(now &- slot.sent) }
        }
    }

    /// Handles one reply line. Returns the slot that became free (or nil).
    func handle(_ line: UnsafeBufferPointer<UInt8>, now: UInt64) -> Int? {
        guard let reply = ServerReply.parse(line) else {
            error("unexpected line: \(lineText(line))")
            return nil
        }
        let id = reply.id
        var slot: Slot
        var s: Int? = nil
        if id & Self.detachedBit != 0 {
            guard let d = detached[id] else {
                error("reply for an id not in flight: \(lineText(line))")
                return nil
            }
            slot = d
        } else {
            let i = Int((id - 1) % UInt32(slots.count))
            guard slots[i].inFlight && slots[i].id == id else {
                error("reply for an id not in flight: \(lineText(line))")
                return nil
            }
            slot = slots[i]
            s = i
        }
        func release() {
            if let s { slots[s].inFlight = false } else { detached[id] = nil }
        }
        switch reply.kind {
        case .cont:
            guard plan.options.mech == "LOGIN", slot.step < 2 else {
                error("unexpected CONT: \(lineText(line))")
                release()
                record(slot, ok: false, now: now)
                return s
            }
            if slot.step == 0 {
                plan.users.userName(slot.user, into: &scratch)
            } else {
                plan.users.password(slot.user, good: slot.good, into: &scratch)
            }
            scratch.withUnsafeBufferPointer { ClientLineEncoder.cont(id: id, response: $0, into: &out) }
            if let s { slots[s].step += 1 } else { detached[id]!.step += 1 }
            return nil
        case .ok:
            if !slot.good {
                error("OK for a wrong password: \(lineText(line))")
            } else if let user = reply.leadingUser(in: line),
                plan.users.userMatches(slot.user, UnsafeBufferPointer(rebasing: line[user]))
            {
                okGood += 1
            } else {
                error("OK with an unexpected user= (wanted \(plan.users.user(slot.user))): \(lineText(line))")
            }
        case .fail:
            if slot.good {
                error("FAIL for a good password (user \(plan.users.user(slot.user))): \(lineText(line))")
            } else {
                failBad += 1
            }
        }
        release()
        record(slot, ok: reply.kind == .ok, now: now)
        return s
    }

    // MARK: loops

    func run() {
        if plan.options.oneshot {
            runOneshot()
        } else {
            runPersistent()
        }
    }

    /// Connects and completes the handshake (blocking, with the --timeout receive timeout). On failure
    /// the error is counted and nil returned.
    func connectAndGreet() -> (Int32, LineReader)? {
        let fd: Int32
        do {
            fd = try connectEndpoint(plan.options.socket)
        } catch {
            self.error("\(error)")
            return nil
        }
        setReceiveTimeout(fd, seconds: plan.options.timeout)
        let reader = LineReader(fd: fd, capacity: 16384)
        do {
            let mechs = try clientHandshake(fd: fd, reader: reader)
            guard mechs.contains(plan.options.mech) else {
                self.error("server does not advertise \(plan.options.mech) (offers \(mechs.joined(separator: " ")))")
                close(fd)
                return nil
            }
        } catch {
            self.error("\(error)")
            close(fd)
            return nil
        }
        return (fd, reader)
    }

    private func flush(_ fd: Int32) -> Bool {
        guard !out.isEmpty else { return true }
        let ok = writeAll(fd, out)
        out.removeAll(keepingCapacity: true)
        if !ok { error("write: \(errnoText())") }
        return ok
    }

    private func runPersistent() {
        guard let (fd, reader) = connectAndGreet() else {
            aborted = true
            return
        }
        defer { close(fd) }
        let now0 = monoNow()
        for s in 0..<slots.count where shouldContinue(now: now0) { issue(s, now: now0) }
        guard flush(fd) else {
            aborted = true
            return
        }
        while inFlight > 0 {
            switch reader.nextLine() {
            case .line(let line):
                let now = monoNow()
                if let s = handle(line, now: now), shouldContinue(now: now) {
                    issue(s, now: now)
                }
                if !reader.hasBufferedLine {
                    guard flush(fd) else {
                        aborted = true
                        return
                    }
                }
            case .eof:
                error("server closed the connection with \(inFlight) requests in flight")
                errors += inFlight - 1
                aborted = true
                return
            case .timeout:
                error("no reply within \(plan.options.timeout)s with \(inFlight) requests in flight")
                errors += inFlight - 1
                aborted = true
                return
            case .error(let e):
                error("read: \(errnoText(e))")
                aborted = true
                return
            }
        }
    }

    /// One connection per request: connect, handshake, AUTH, reply, close. Latency covers all of it.
    private func runOneshot() {
        while true {
            let t0 = monoNow()
            guard shouldContinue(now: t0) else { return }
            guard let (fd, reader) = connectAndGreet() else {
                if errors > 100 { return }
                continue
            }
            issue(0, now: t0)
            var ok = flush(fd)
            while ok && inFlight > 0 {
                switch reader.nextLine() {
                case .line(let line):
                    _ = handle(line, now: monoNow())
                    ok = flush(fd)
                case .eof, .timeout, .error:
                    error("connection lost before the reply")
                    slots[0].inFlight = false
                    detached.removeAll()
                    inFlight = 0
                    ok = false
                }
            }
            close(fd)
            if errors > 100 {
                aborted = true
                return
            }
        }
    }
}

/// Runs the load test and prints its results.
func runLoad(_ o: Options) throws(BenchError) {
    let users = try UserTable(path: o.usersFile!)
    // Postfix's parameters (docs/PROTOCOL.md §1.6), rip= per request in between.
    var parameters: [UInt8] = []
    ClientLineEncoder.parameter("service", value: o.service, into: &parameters)
    ClientLineEncoder.parameter("nologin", into: &parameters)
    ClientLineEncoder.parameter("lip", value: "127.0.0.1", into: &parameters)
    var flags: [UInt8] = []
    if o.secured { ClientLineEncoder.parameter("secured", into: &flags) }
    if o.noPenalty { ClientLineEncoder.parameter("no-penalty", into: &flags) }
    signal(SIGPIPE, SIG_IGN)

    let t0 = monoNow()
    let start = t0 + UInt64(o.warmup * 1e9)
    let end = start + UInt64((o.duration ?? 0) * 1e9)
    var quota: [Int] = []
    if let total = o.requests {
        for i in 0..<o.connections { quota.append(total / o.connections + (i < total % o.connections ? 1 : 0)) }
    }
    let plan = LoadPlan(options: o, users: users, start: start, end: end, quota: quota,
                        authParameters: parameters, authFlags: flags)
    let workers = (0..<o.connections).map { LoadWorker(index: $0, plan: plan) }
    // --engine threads (and --oneshot): a thread per worker. --engine epoll: T event loops, worker i
    // on loop i mod T.
    let threads: [pthread_t]
    if o.engine == .threads {
        threads = workers.map { w in spawnThread { w.run() } }
    } else {
        let loops = min(o.threads, workers.count)
        threads = (0..<loops).map { t in
            let mine = stride(from: t, to: workers.count, by: loops).map { workers[$0] }
            return spawnThread { EventLoop(workers: mine).run() }
        }
    }

    // Window bookkeeping from the main thread: our CPU and the server's, at the window's edges.
    let now = monoNow()
    if start > now { sleepNanos(start - now) }
    let cpu0 = selfCPUNanos()
    let srv0 = o.serverPIDs.map { processCPUNanos($0) ?? 0 }
    let wall0 = monoNow()
    var cpu1: UInt64 = 0
    var srv1: [UInt64] = []
    var wall1: UInt64 = 0
    if o.requests == nil {
        let n = monoNow()
        if end > n { sleepNanos(end - n) }
        cpu1 = selfCPUNanos()
        srv1 = o.serverPIDs.map { processCPUNanos($0) ?? 0 }
        wall1 = monoNow()
        for t in threads { joinThread(t) }
    } else {
        for t in threads { joinThread(t) }
        cpu1 = selfCPUNanos()
        srv1 = o.serverPIDs.map { processCPUNanos($0) ?? 0 }
        wall1 = monoNow()
    }
    let load = loadAverage()

    var all: [UInt64] = []
    all.reserveCapacity(workers.reduce(0) { $0 + $1.latencies.count })
    for w in workers { all.append(contentsOf: w.latencies) }
    all.sort()
    var fails: [UInt64] = []
    for w in workers { fails.append(contentsOf: w.failLatencies) }
    fails.sort()
    let completed = workers.reduce(0) { $0 + $1.completedInWindow }
    let errors = workers.reduce(0) { $0 + $1.errors }
    let okGood = workers.reduce(0) { $0 + $1.okGood }
    let failBad = workers.reduce(0) { $0 + $1.failBad }
    var samples: [String] = []
    for w in workers { for s in w.errorSamples where samples.count < 8 { samples.append(s) } }
    let windowNs: UInt64
    if o.requests != nil {
        let last = workers.map(\.lastCompletion).max() ?? start
        windowNs = max(last > start ? last - start : 1, 1)
    } else {
        windowNs = end - start
    }
    let seconds = Double(windowNs) / 1e9
    let rate = Double(completed) / seconds
    let cpuWall = Double(wall1 - wall0)
    let benchCPU = cpuWall > 0 ? Double(cpu1 - cpu0) / cpuWall * 100 : 0
    var serverCPU: Double? = nil
    if !o.serverPIDs.isEmpty && cpuWall > 0 {
        var sum: UInt64 = 0
        for (a, b) in zip(srv0, srv1) where b >= a { sum += b - a }
        serverCPU = Double(sum) / cpuWall * 100
    }
    func pct(_ q: Double, _ v: [UInt64]) -> Double {
        guard !v.isEmpty else { return 0 }
        let i = min(v.count - 1, max(0, Int((q * Double(v.count)).rounded(.up)) - 1))
        return Double(v[i]) / 1000
    }
    func pct(_ q: Double) -> Double { pct(q, all) }
    let mean = all.isEmpty ? 0 : Double(all.reduce(0, +)) / Double(all.count) / 1000

    var j = JSON()
    j.add("mode", o.oneshot ? "oneshot" : "load")
    j.add("label", o.label)
    j.add("socket", o.socket)
    j.add("mech", o.mech)
    j.add("connections", o.connections)
    j.add("pipeline", o.pipeline)
    j.add("engine", o.engine.rawValue)
    j.add("threads", threads.count)
    if o.engine == .epoll && o.coalesceUs > 0 { j.add("coalesce_us", o.coalesceUs) }
    j.add("users", users.count)
    j.add("bad_share", o.badShare)
    j.add("window_s", seconds)
    j.add("completed", completed)
    j.add("ok_good", okGood)
    j.add("fail_bad", failBad)
    j.add("errors", errors)
    j.add("error_samples", samples)
    j.add("auths_per_s", rate)
    j.add("lat_p50_us", pct(0.50))
    j.add("lat_p99_us", pct(0.99))
    j.add("lat_p999_us", pct(0.999))
    j.add("lat_max_us", all.last.map { Double($0) / 1000 } ?? 0)
    j.add("lat_mean_us", mean)
    j.add("fail_lat_p50_us", pct(0.5, fails))
    j.add("fail_lat_p99_us", pct(0.99, fails))
    j.add("fail_lat_max_us", fails.last.map { Double($0) / 1000 } ?? 0)
    j.add("bench_cpu_pct", benchCPU)
    if let serverCPU {
        j.add("server_cpu_pct", serverCPU)
        j.add("server_cpu_us_per_auth", completed > 0 ? serverCPU / 100 * seconds * 1e6 / Double(completed) : 0)
    }
    // Fairness: answers per connection inside the window (a server that serves some connections
    // first and starves others shows a low min/max).
    let perConn = workers.map(\.completedInWindow).sorted()
    j.add("per_conn_min", perConn.first ?? 0)
    j.add("per_conn_median", perConn.isEmpty ? 0 : perConn[perConn.count / 2])
    j.add("per_conn_max", perConn.last ?? 0)
    j.add("loadavg", load)

    let human = """
        \(o.label.isEmpty ? "" : "[\(o.label)] ")\(o.oneshot ? "oneshot " : "")\(o.mech) conns=\(o.connections) pipeline=\(o.pipeline) engine=\(o.engine.rawValue)\(o.engine == .epoll && o.coalesceUs > 0 ? " coalesce=\(fmt(o.coalesceUs, 0))us" : "") threads=\(threads.count) users=\(users.count) bad=\(o.badShare)
          \(fmt(rate, 0)) auths/s over \(fmt(seconds, 2)) s (\(completed) completed: \(okGood) OK as expected, \(failBad) FAIL as expected, \(errors) errors)
          latency us (good password -> OK): p50 \(fmt(pct(0.5), 1))  p99 \(fmt(pct(0.99), 1))  p99.9 \(fmt(pct(0.999), 1))  max \(fmt(all.last.map { Double($0) / 1000 } ?? 0, 1))  mean \(fmt(mean, 1))
          latency us (wrong password -> FAIL): p50 \(fmt(pct(0.5, fails), 1))  p99 \(fmt(pct(0.99, fails), 1))  max \(fmt(fails.last.map { Double($0) / 1000 } ?? 0, 1))
          answers per connection in the window: min \(perConn.first ?? 0), median \(perConn.isEmpty ? 0 : perConn[perConn.count / 2]), max \(perConn.last ?? 0)
          bench CPU \(fmt(benchCPU, 1))% of one core\(serverCPU.map { ", server CPU \(fmt($0, 1))% (\(fmt($0 / 100 * seconds * 1e6 / Double(max(completed, 1)), 1)) us/auth)" } ?? ""); load average \(load)
        """ + (samples.isEmpty ? "" : "\n  errors, first ones:\n" + samples.map { "    " + $0 }.joined(separator: "\n"))
    emit(o, human: human, json: j)
    if completed == 0 || errors > 0 { exitCode = 1 }
}

nonisolated(unsafe) var exitCode: Int32 = 0

func fmt(_ v: Double, _ decimals: Int) -> String {
    var m = 1.0
    for _ in 0..<decimals { m *= 10 }
    let r = (v * m).rounded() / m
    if decimals == 0 { return String(Int(r)) }
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < decimals { s += String(repeating: "0", count: decimals - have) }
    }
    return s
}

func emit(_ o: Options, human: String, json: JSON) {
    if o.json {
        printErr(human)
        print(json.text)
    } else {
        print(human)
    }
}

/// A flat JSON object builder (values: strings, numbers, string arrays).
struct JSON {
    private var parts: [String] = []
    var text: String { "{" + parts.joined(separator: ", ") + "}" }

    static func quote(_ s: String) -> String {
        var r = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\t": r += "\\t"
            default:
                if u.value < 0x20 { r += "\\u00" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16) } else { r.unicodeScalars.append(u) }
            }
        }
        return r + "\""
    }

    mutating func add(_ k: String, _ v: String) { parts.append("\(JSON.quote(k)): \(JSON.quote(v))") }
    mutating func add(_ k: String, _ v: Int) { parts.append("\(JSON.quote(k)): \(v)") }
    mutating func add(_ k: String, _ v: Double) {
        parts.append("\(JSON.quote(k)): \(v.isFinite ? fmt(v, 3) : "null")")
    }
    mutating func add(_ k: String, _ v: [String]) {
        parts.append("\(JSON.quote(k)): [" + v.map(JSON.quote).joined(separator: ", ") + "]")
    }
    mutating func addRaw(_ k: String, _ raw: String) { parts.append("\(JSON.quote(k)): \(raw)") }
}
