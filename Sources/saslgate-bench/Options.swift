#if canImport(Glibc)
import Glibc
#endif

let usage = """
    saslgate-bench: load generator for any server speaking the Dovecot auth-client protocol v1
    (saslgated, Dovecot's auth service). AF_UNIX sockets or plain TCP (--socket inet:HOST:PORT), closed
    loop: K requests in flight per
    connection, a new one sent as soon as one is answered.
    Every reply is checked (OK for a good password with the expected user=, FAIL for a wrong one,
    matching ids); anything else counts as an error.

    Modes (default: load):
      load     --socket P --users FILE [--connections N] [--pipeline K]
               [--duration S | --requests TOTAL] [--warmup S] [--bad-share F] [--mech plain|login]
               [--secured] [--no-penalty] [--rip spread|unique|none] [--service NAME]
               [--engine epoll|threads] [--threads T] [--coalesce-us U]
               [--oneshot]          a new connection (connect + handshake) for every request, as Exim does
      --idle N --socket P [--users FILE] [--settle S] [--hold S]
               open N connections, complete the handshake, hold them; reports the server's memory
               (with --server-pid) before and after; checks the first and last still answer an AUTH
      --probe  --socket P --users FILE [--since EPOCH_US] [--timeout S]
               waits until the socket accepts and answers an AUTH for the LAST user of FILE with OK;
               prints the times (relative to --since, e.g. bash's $EPOCHREALTIME before exec)

    Common:
      --server-pid PID[,PID...]  measure these processes' CPU time over the window and their memory
      --json                     one JSON object on stdout (the human summary goes to stderr)
      --label TEXT               copied into the output
      --seed N                   random seed (default: fixed, so both servers get the same lines)
      --timeout S                per-read timeout: nothing received for S seconds on a connection with
                                 requests in flight is an error (default 15)

    Engines (persistent connections): epoll (default) drives all connections from --threads T
    threads (default 1; connections spread round-robin), non-blocking sockets in one epoll set per
    thread, so the bench stays cheap and leaves the cores to the server under test; threads is the
    older one blocking thread per connection (costs more CPU in context switches at 64 connections).
    Both send and check the same requests; --oneshot always uses a thread per connection. An event
    loop with a single connection reads it blocking, as the thread engine does (cheaper wakeups).
    The epoll loop wakes once per reply a server writes on its own; --coalesce-us U (default 0: off)
    pauses U microseconds (plus the kernel's timer slack, 50 us by default) after each batch so that
    replies gather: far fewer wakeups and less bench CPU, but requests then go out in bursts and
    latencies are overstated by up to the pause. Only for many requests in flight (64x16, not 1x1;
    a loop with a single connection ignores it).

    --users FILE has one "user:password" per line (the password is everything after the first ':').
    A request uses a uniformly random user; with probability --bad-share its password is wrong.
    Wrong-password requests are sent alongside the K in-flight good ones and do not hold a slot
    (a failing client does not keep the others waiting; Dovecot 2.3 releases failures from a 0.5 s
    timer even with auth_failure_delay = 0). --closed-failures makes them hold a slot instead.
    Latency percentiles are for good-password requests (AUTH sent -> OK); failures have their own.
    Throughput counts answers inside the --duration window; latencies are those of the requests sent
    inside it (the run drains them afterwards, so slow ones are not left out).
    --rip spread (default): rip= random in 10.0.0.0/8; unique: a different address per request
    (no address is reused within a run, so per-IP penalties never trigger but are bookkept);
    none: no rip=. --no-penalty adds Dovecot's no-penalty flag to every request.
    """

struct Options {
    enum Mode { case load, idle, probe }
    enum RipMode: String { case spread, unique, none }

    var mode = Mode.load
    var socket = ""
    var connections = 1
    var pipeline = 1
    var duration: Double? = nil
    var requests: Int? = nil
    var warmup = 1.0
    var usersFile: String? = nil
    var badShare = 0.1
    var mech = "PLAIN"
    var secured = false
    var noPenalty = false
    var rip = RipMode.spread
    var service = "smtp"
    var oneshot = false
    enum Engine: String { case epoll, threads }
    var engine = Engine.epoll
    /// Event-loop threads for --engine epoll.
    var threads = 1
    /// --engine epoll: pause after each batch, microseconds.
    var coalesceUs = 0.0
    var closedFailures = false
    var idle = 0
    var settle = 1.0
    var hold = 0.0
    var since: UInt64? = nil
    var timeout = 15.0
    var serverPIDs: [Int32] = []
    var json = false
    var label = ""
    var seed: UInt64 = 0x5EED_5A51_6A7E

    static func parse(_ args: [String]) throws(BenchError) -> Options {
        var o = Options()
        var i = 0
        func value(_ name: String) throws(BenchError) -> String {
            i += 1
            guard i < args.count else { throw BenchError("\(name) needs a value") }
            return args[i]
        }
        func number(_ name: String) throws(BenchError) -> Double {
            let v = try value(name)
            guard let d = Double(v), d >= 0 else { throw BenchError("\(name): not a number: \(v)") }
            return d
        }
        func integer(_ name: String) throws(BenchError) -> Int {
            let v = try value(name)
            guard let n = Int(v), n >= 0 else { throw BenchError("\(name): not a non-negative integer: \(v)") }
            return n
        }
        while i < args.count {
            let a = args[i]
            switch a {
            case "-h", "--help":
                print(usage)
                exit(0)
            case "--socket": o.socket = try value(a)
            case "--connections", "-c": o.connections = max(1, try integer(a))
            case "--pipeline", "-k": o.pipeline = max(1, try integer(a))
            case "--duration", "-d": o.duration = try number(a)
            case "--requests", "-n": o.requests = max(1, try integer(a))
            case "--warmup": o.warmup = try number(a)
            case "--users": o.usersFile = try value(a)
            case "--bad-share": o.badShare = min(1, try number(a))
            case "--mech":
                let m = try value(a).uppercased()
                guard m == "PLAIN" || m == "LOGIN" else { throw BenchError("--mech: plain or login") }
                o.mech = m
            case "--secured": o.secured = true
            case "--no-penalty": o.noPenalty = true
            case "--rip":
                let v = try value(a)
                guard let r = RipMode(rawValue: v) else { throw BenchError("--rip: spread, unique or none") }
                o.rip = r
            case "--service": o.service = try value(a)
            case "--oneshot": o.oneshot = true
            case "--engine":
                let v = try value(a)
                guard let e = Engine(rawValue: v) else { throw BenchError("--engine: epoll or threads") }
                o.engine = e
            case "--threads": o.threads = max(1, try integer(a))
            case "--coalesce-us": o.coalesceUs = try number(a)
            case "--closed-failures": o.closedFailures = true
            case "--idle":
                o.mode = .idle
                o.idle = try integer(a)
            case "--settle": o.settle = try number(a)
            case "--hold": o.hold = try number(a)
            case "--probe": o.mode = .probe
            case "--since":
                let v = try value(a)
                // Accept bash's $EPOCHREALTIME ("1732400000.123456") or plain microseconds.
                if let dot = v.firstIndex(of: "."), let s = UInt64(v[..<dot]) {
                    let frac = String(v[v.index(after: dot)...].prefix(6))
                    let padded = frac + String(repeating: "0", count: 6 - frac.count)
                    o.since = s * 1_000_000 + (UInt64(padded) ?? 0)
                } else if let us = UInt64(v) {
                    o.since = us
                } else {
                    throw BenchError("--since: epoch microseconds or $EPOCHREALTIME")
                }
            case "--timeout": o.timeout = max(0.1, try number(a))
            case "--server-pid":
                for p in try value(a).split(separator: ",") {
                    guard let pid = Int32(p) else { throw BenchError("--server-pid: not a pid: \(p)") }
                    o.serverPIDs.append(pid)
                }
            case "--json": o.json = true
            case "--label": o.label = try value(a)
            case "--seed": o.seed = UInt64(try integer(a))
            default:
                throw BenchError("unknown argument \(a) (see --help)")
            }
            i += 1
        }
        guard !o.socket.isEmpty else { throw BenchError("--socket is required") }
        if o.mode != .idle && o.usersFile == nil { throw BenchError("--users is required") }
        if o.duration == nil && o.requests == nil { o.duration = 5 }
        if o.oneshot {
            o.pipeline = 1
            o.closedFailures = true
            o.engine = .threads  // one connection per request: the thread-per-connection loop
        }
        return o
    }
}

/// xorshift64*: cheap, per thread, deterministic from the seed.
struct FastRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    @inline(__always) mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    @inline(__always) mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    @inline(__always) mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// The users file, kept as one byte buffer plus offsets (a million users load in well under a second).
final class UserTable: @unchecked Sendable {
    let bytes: [UInt8]
    /// Per user: start of the name, end of the name (the ':'), end of the password.
    let starts: [UInt32]
    let colons: [UInt32]
    let ends: [UInt32]

    var count: Int { starts.count }

    init(path: String) throws(BenchError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("\(path): \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        var data = [UInt8](repeating: 0, count: Int(st.st_size))
        var off = 0
        while off < data.count {
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, $0.count - off) }
            if n > 0 { off += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        data.removeSubrange(off...)
        var starts: [UInt32] = []
        var colons: [UInt32] = []
        var ends: [UInt32] = []
        var lineStart = 0
        data.withUnsafeBufferPointer { d in
            var i = 0
            var colon = -1
            while i <= d.count {
                if i == d.count || d[i] == lf {
                    var e = i
                    if e > lineStart && d[e - 1] == 0x0D { e -= 1 }
                    if colon > lineStart && d[lineStart] != 0x23 {
                        starts.append(UInt32(lineStart))
                        colons.append(UInt32(colon))
                        ends.append(UInt32(e))
                    }
                    lineStart = i + 1
                    colon = -1
                } else if d[i] == 0x3A && colon < 0 {
                    colon = i
                }
                i += 1
            }
        }
        guard !starts.isEmpty else { throw BenchError("\(path): no user:password lines") }
        bytes = data
        self.starts = starts
        self.colons = colons
        self.ends = ends
    }

    func user(_ i: Int) -> String {
        String(decoding: bytes[Int(starts[i])..<Int(colons[i])], as: UTF8.self)
    }

    /// "\0user\0password" (a wrong password when `good` is false) into `scratch`, replacing what it held.
    func plainResponse(_ i: Int, good: Bool, into scratch: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(0)
        bytes.withUnsafeBufferPointer { b in
            scratch.append(contentsOf: UnsafeBufferPointer(rebasing: b[Int(starts[i])..<Int(colons[i])]))
            scratch.append(0)
            scratch.append(contentsOf: UnsafeBufferPointer(rebasing: b[Int(colons[i]) + 1..<Int(ends[i])]))
        }
        if !good { scratch.append(contentsOf: [0x2D, 0x62, 0x61, 0x64]) }  // "-bad"
    }

    /// User i's name into `scratch`.
    func userName(_ i: Int, into scratch: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: bytes[Int(starts[i])..<Int(colons[i])])
    }

    /// User i's password (a wrong one when `good` is false) into `scratch`.
    func password(_ i: Int, good: Bool, into scratch: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: bytes[Int(colons[i]) + 1..<Int(ends[i])])
        if !good { scratch.append(contentsOf: [0x2D, 0x62, 0x61, 0x64]) }
    }

    /// True when `value` equals user i's name, compared case-insensitively (servers may lower-case it).
    func userMatches(_ i: Int, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let s = Int(starts[i])
        let n = Int(colons[i]) - s
        guard value.count == n else { return false }
        return bytes.withUnsafeBufferPointer { b in
            for j in 0..<n {
                var x = b[s + j]
                var y = value[j]
                if x >= 0x41 && x <= 0x5A { x += 32 }
                if y >= 0x41 && y <= 0x5A { y += 32 }
                if x != y { return false }
            }
            return true
        }
    }
}
