import AuthProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Memory of a set of processes: summed VmRSS, VmHWM and Pss (kB).
struct Memory {
    var rss = 0
    var hwm = 0
    var pss = 0
    var perPID: [(pid: Int32, rss: Int, pss: Int)] = []

    static func of(_ pids: [Int32]) -> Memory {
        var m = Memory()
        for p in pids {
            let rss = procKB(p, file: "status", key: "VmRSS") ?? 0
            let pss = procKB(p, file: "smaps_rollup", key: "Pss") ?? 0
            m.rss += rss
            m.hwm += procKB(p, file: "status", key: "VmHWM") ?? 0
            m.pss += pss
            m.perPID.append((p, rss, pss))
        }
        return m
    }
}

/// One AUTH PLAIN on an established connection; true when answered OK.
func authOnce(fd: Int32, reader: LineReader, users: UserTable, user: Int, id: Int, secured: Bool) -> Bool {
    var parameters = [
        AuthParameter("service", "smtp"), AuthParameter("nologin"), AuthParameter("lip", "127.0.0.1"),
        AuthParameter("rip", "10.255.255.254"),
    ]
    if secured { parameters.append(AuthParameter("secured")) }
    parameters.append(AuthParameter("no-penalty"))
    var response: [UInt8] = []
    users.plainResponse(user, good: true, into: &response)
    var line: [UInt8] = []
    response.withUnsafeBufferPointer {
        ClientLineEncoder.auth(id: UInt32(id), mechanism: "PLAIN", parameters: parameters, initialResponse: $0, into: &line)
    }
    guard writeAll(fd, line) else { return false }
    switch reader.nextLine() {
    case .line(let l): return ServerReply.parse(l)?.kind == .ok
    default: return false
    }
}

/// --idle N: N handshaken connections held open; the server's memory before and after.
func runIdle(_ o: Options) throws(BenchError) {
    signal(SIGPIPE, SIG_IGN)
    let limit = raiseFileLimit(to: o.idle + 64)
    guard limit >= o.idle + 16 else {
        throw BenchError("open-file limit \(limit) is too low for \(o.idle) connections (raise ulimit -n)")
    }
    let users = try o.usersFile.map { (p: String) throws(BenchError) in try UserTable(path: p) }
    let before = Memory.of(o.serverPIDs)
    let t0 = monoNow()
    var fds: [Int32] = []
    fds.reserveCapacity(o.idle)
    var errors = 0
    var samples: [String] = []
    // Connect and send VERSION/CPID on all first (as Postfix does, before reading), then read greetings
    // in batches so the listen backlog never overflows.
    let batch = 256
    var i = 0
    while i < o.idle {
        let n = min(batch, o.idle - i)
        var opened: [Int32] = []
        for _ in 0..<n {
            do {
                let fd = try connectEndpoint(o.socket)
                setReceiveTimeout(fd, seconds: o.timeout)
                opened.append(fd)
            } catch {
                errors += 1
                if samples.count < 5 { samples.append("\(error)") }
            }
        }
        for fd in opened {
            let reader = LineReader(fd: fd, capacity: 2048)
            do {
                _ = try clientHandshake(fd: fd, reader: reader)
                fds.append(fd)
            } catch {
                errors += 1
                if samples.count < 5 { samples.append("\(error)") }
                close(fd)
            }
        }
        i += n
    }
    let connectSeconds = Double(monoNow() - t0) / 1e9
    sleepNanos(UInt64(o.settle * 1e9))
    let after = Memory.of(o.serverPIDs)
    // Still served? One AUTH on the first and on the last connection.
    var verified = "skipped (no --users)"
    if let users, let first = fds.first, let last = fds.last {
        let okFirst = authOnce(fd: first, reader: LineReader(fd: first, capacity: 4096), users: users, user: 0, id: 1, secured: o.secured)
        let okLast = authOnce(fd: last, reader: LineReader(fd: last, capacity: 4096), users: users, user: users.count - 1, id: 1, secured: o.secured)
        verified = okFirst && okLast ? "ok" : "FAILED (first \(okFirst), last \(okLast))"
        if !(okFirst && okLast) { errors += 1 }
    }
    let perConn = fds.isEmpty ? 0 : Double(after.rss - before.rss) * 1024 / Double(fds.count)
    var j = JSON()
    j.add("mode", "idle")
    j.add("label", o.label)
    j.add("requested", o.idle)
    j.add("connected", fds.count)
    j.add("errors", errors)
    j.add("error_samples", samples)
    j.add("connect_s", connectSeconds)
    j.add("rss_before_kb", before.rss)
    j.add("rss_after_kb", after.rss)
    j.add("pss_before_kb", before.pss)
    j.add("pss_after_kb", after.pss)
    j.add("hwm_after_kb", after.hwm)
    j.add("bytes_per_conn", perConn)
    j.add("verified", verified)
    // Per process "pid:rss_kb:pss_kb", before and after (Dovecot runs several processes).
    j.add("per_pid_before", before.perPID.map { "\($0.pid):\($0.rss):\($0.pss)" })
    j.add("per_pid_after", after.perPID.map { "\($0.pid):\($0.rss):\($0.pss)" })
    let human = """
        \(o.label.isEmpty ? "" : "[\(o.label)] ")idle: \(fds.count)/\(o.idle) connections handshaken in \(fmt(connectSeconds, 2)) s, \(errors) errors
          server RSS \(before.rss) kB -> \(after.rss) kB (\(fmt(perConn, 0)) bytes per connection), PSS \(before.pss) -> \(after.pss) kB; AUTH on first/last connection: \(verified)
        """ + (samples.isEmpty ? "" : "\n  errors: " + samples.joined(separator: "; "))
    emit(o, human: human, json: j)
    if o.hold > 0 { sleepNanos(UInt64(o.hold * 1e9)) }
    for fd in fds { close(fd) }
    if errors > 0 { exitCode = 1 }
}

/// --probe: time until the socket accepts, and until an AUTH for the last user is answered OK.
func runProbe(_ o: Options) throws(BenchError) {
    signal(SIGPIPE, SIG_IGN)
    let users = try UserTable(path: o.usersFile!)
    let since = o.since ?? realtimeMicros()
    let deadline = monoNow() + UInt64(max(o.timeout, 1) * 1e9)
    var socketReady: UInt64? = nil
    var firstOK: UInt64? = nil
    var lastError = ""
    var attempts = 0
    while monoNow() < deadline {
        attempts += 1
        let fd: Int32
        do {
            fd = try connectEndpoint(o.socket)
        } catch {
            lastError = "\(error)"
            sleepNanos(1_000_000)
            continue
        }
        if socketReady == nil { socketReady = realtimeMicros() }
        setReceiveTimeout(fd, seconds: o.timeout)
        let reader = LineReader(fd: fd, capacity: 4096)
        do {
            _ = try clientHandshake(fd: fd, reader: reader)
            if authOnce(fd: fd, reader: reader, users: users, user: users.count - 1, id: 1, secured: o.secured) {
                firstOK = realtimeMicros()
                close(fd)
                break
            }
            lastError = "AUTH for the last user was not answered OK"
        } catch {
            lastError = "\(error)"
        }
        close(fd)
        sleepNanos(2_000_000)
    }
    func ms(_ t: UInt64?) -> Double { t.map { Double(Int64($0) - Int64(since)) / 1000 } ?? -1 }
    var j = JSON()
    j.add("mode", "probe")
    j.add("label", o.label)
    j.add("socket_ready_ms", ms(socketReady))
    j.add("first_ok_ms", ms(firstOK))
    j.add("attempts", attempts)
    j.add("error", firstOK == nil ? lastError : "")
    let mem = Memory.of(o.serverPIDs)
    j.add("rss_kb", mem.rss)
    j.add("pss_kb", mem.pss)
    let human = """
        \(o.label.isEmpty ? "" : "[\(o.label)] ")probe: socket accepts after \(fmt(ms(socketReady), 1)) ms, first OK (user \(users.user(users.count - 1))) after \(fmt(ms(firstOK), 1)) ms\(firstOK == nil ? " -- FAILED: \(lastError)" : "")
        """
    emit(o, human: human, json: j)
    if firstOK == nil { exitCode = 1 }
}
