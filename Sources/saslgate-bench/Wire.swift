import AuthProtocol

#if canImport(Glibc)
import Glibc
#endif

// Low-level pieces: clocks, blocking AF_UNIX sockets, a line reader, process statistics. What goes on
// the wire is AuthProtocol's client codec (ClientLineEncoder, ServerReply, ServerLine).

// MARK: - Clocks

/// Monotonic nanoseconds.
@inline(__always)
func monoNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall-clock microseconds since the epoch (comparable with bash's $EPOCHREALTIME).
func realtimeMicros() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000 &+ UInt64(ts.tv_nsec) / 1000
}

func sleepNanos(_ ns: UInt64) {
    var req = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rem = timespec()
    while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
}

/// CPU time (user + system) of this process in nanoseconds.
func selfCPUNanos() -> UInt64 {
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    let u = UInt64(ru.ru_utime.tv_sec) * 1_000_000_000 + UInt64(ru.ru_utime.tv_usec) * 1000
    let s = UInt64(ru.ru_stime.tv_sec) * 1_000_000_000 + UInt64(ru.ru_stime.tv_usec) * 1000
    return u + s
}

// MARK: - Errors

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func errnoText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

func printErr(_ s: String) {
    let line = s + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

// MARK: - Sockets

/// Connects a blocking stream socket to `endpoint`: a Unix socket path, or `inet:HOST:PORT` (IPv6 in
/// brackets) for a daemon's TCP listener (plain TCP only). Returns the fd or throws with errno text.
func connectEndpoint(_ endpoint: String) throws(BenchError) -> Int32 {
    guard endpoint.hasPrefix("inet:") else { return try connectUnix(endpoint) }
    var rest = Substring(endpoint.dropFirst(5))
    let host: Substring
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
        host = rest[rest.index(after: rest.startIndex)..<close]
        rest = rest[rest.index(after: close)...]
    } else if let colon = rest.lastIndex(of: ":") {
        host = rest[..<colon]
        rest = rest[colon...]
    } else {
        throw BenchError("\(endpoint): write inet:HOST:PORT")
    }
    guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), port > 0 else {
        throw BenchError("\(endpoint): write inet:HOST:PORT (port 1-65535)")
    }
    let v6 = host.contains(":")
    var storage = sockaddr_storage()
    let length: Int
    var parsed = false
    if v6 {
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_port = in_port_t(port.bigEndian)
        parsed = inet_pton(AF_INET6, String(host), &a.sin6_addr) == 1
        withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
        length = MemoryLayout<sockaddr_in6>.size
    } else {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(port.bigEndian)
        parsed = inet_pton(AF_INET, String(host), &a.sin_addr) == 1
        withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
        length = MemoryLayout<sockaddr_in>.size
    }
    guard parsed else { throw BenchError("\(endpoint): '\(host)' is not a numeric IP address") }
    let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket(): \(errnoText())") }
    // Requests are small lines: no Nagle delay between a pipelined client's writes.
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    let rc = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(length)) }
    }
    if rc != 0 {
        let e = errno
        close(fd)
        throw BenchError("connect(\(endpoint)): \(errnoText(e))")
    }
    return fd
}

/// Connects a blocking AF_UNIX stream socket. Returns the fd or throws with errno text.
func connectUnix(_ path: String) throws(BenchError) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket(): \(errnoText())") }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: addr.sun_path)
    guard bytes.count < capacity else {
        close(fd)
        throw BenchError("socket path too long: \(path)")
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if rc != 0 {
        let e = errno
        close(fd)
        throw BenchError("connect(\(path)): \(errnoText(e))")
    }
    return fd
}

func setReceiveTimeout(_ fd: Int32, seconds: Double) {
    var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
}

/// Writes all of `bytes`; false on error (EPIPE, reset).
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n > 0 {
            off += n
        } else if n < 0 && errno == EINTR {
            continue
        } else {
            return false
        }
    }
    return true
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { writeAll(fd, $0) }
}

/// Buffered line reader over an fd. `nextLine` (blocking fds) hands out a view of one line without
/// the LF (and without a CR before it); the view is valid until the next call. The event loop
/// (EventLoop.swift) uses the two halves separately on a non-blocking fd: `fill` (one read) and
/// `bufferedLine` (the next complete line already in the buffer, if any).
final class LineReader {
    let fd: Int32
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0
    private var end = 0

    init(fd: Int32, capacity: Int = 65536) {
        self.fd = fd
        self.capacity = capacity
        self.buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }

    enum ReadResult { case line(UnsafeBufferPointer<UInt8>), eof, timeout, error(Int32) }
    enum FillResult { case data, eof, wouldBlock, error(Int32) }

    /// True when a complete line is already buffered (no read needed).
    var hasBufferedLine: Bool {
        end > start && memchr(buffer + start, 0x0A, end - start) != nil
    }

    /// The next complete line in the buffer (consumed), or nil when a read is needed first.
    func bufferedLine() -> UnsafeBufferPointer<UInt8>? {
        guard end > start, let p = memchr(buffer + start, 0x0A, end - start) else { return nil }
        let lf = p.assumingMemoryBound(to: UInt8.self) - buffer
        var lineEnd = lf
        if lineEnd > start && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        let line = UnsafeBufferPointer(start: buffer + start, count: lineEnd - start)
        start = lf + 1
        return line
    }

    /// One read(2) into the free end of the buffer (compacted first, grown if a single line fills it).
    /// Invalidates views handed out before.
    func fill() -> FillResult {
        if start > 0 {
            if end > start { memmove(buffer, buffer + start, end - start) }
            end -= start
            start = 0
        }
        if end == capacity {
            let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
            bigger.update(from: buffer, count: end)
            buffer.deallocate()
            buffer = bigger
            capacity *= 2
        }
        while true {
            let n = read(fd, buffer + end, capacity - end)
            if n > 0 {
                end += n
                return .data
            } else if n == 0 {
                return .eof
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return .wouldBlock
            } else {
                return .error(errno)
            }
        }
    }

    /// The next line, reading as needed. On a blocking fd with SO_RCVTIMEO, `.timeout` means no data
    /// arrived in time.
    func nextLine() -> ReadResult {
        while true {
            if let line = bufferedLine() { return .line(line) }
            switch fill() {
            case .data: continue
            case .eof: return .eof
            case .wouldBlock: return .timeout
            case .error(let e): return .error(e)
            }
        }
    }
}

// MARK: - Protocol helpers

let lf: UInt8 = 0x0A
let tab: UInt8 = 0x09

extension Array where Element == UInt8 {
    @inline(__always) mutating func append(ascii s: StaticString) {
        s.withUTF8Buffer { self.append(contentsOf: $0) }
    }

    /// Appends the decimal digits of `v`.
    @inline(__always) mutating func appendDecimal(_ v: UInt64) {
        var div: UInt64 = 1
        while div <= v / 10 { div *= 10 }
        while div > 0 {
            append(UInt8(truncatingIfNeeded: 0x30 + (v / div) % 10))
            div /= 10
        }
    }
}

func lineText(_ line: UnsafeBufferPointer<UInt8>, limit: Int = 160) -> String {
    var s = ""
    for b in line.prefix(limit) {
        switch b {
        case 0x09: s += "\\t"
        case 0x20..<0x7F: s.unicodeScalars.append(Unicode.Scalar(b))
        default: s += "\\x" + String(b, radix: 16)
        }
    }
    if line.count > limit { s += "..." }
    return s
}

/// Handshake as a client (VERSION 1 2, CPID), then reads the server greeting up to DONE. Returns the
/// advertised mechanisms (upper case).
func clientHandshake(fd: Int32, reader: LineReader) throws(BenchError) -> [String] {
    var hello: [UInt8] = []
    ClientLineEncoder.version(into: &hello)
    ClientLineEncoder.cpid(UInt32(getpid()), into: &hello)
    guard writeAll(fd, hello) else { throw BenchError("write handshake: \(errnoText())") }
    var greeting = ServerGreeting()
    while !greeting.isComplete {
        switch reader.nextLine() {
        case .line(let l):
            do throws(MalformedServerLine) {
                greeting.add(try ServerLine.parse(l))
            } catch {
                throw BenchError("greeting: \(error)")
            }
        case .eof: throw BenchError("server closed the connection during the handshake")
        case .timeout: throw BenchError("timeout waiting for the greeting")
        case .error(let e): throw BenchError("read greeting: \(errnoText(e))")
        }
    }
    guard greeting.major == 1 else { throw BenchError("greeting without VERSION 1") }
    return greeting.mechanismNames
}

// MARK: - /proc

/// utime+stime of a process (all threads) in nanoseconds; nil if gone.
func processCPUNanos(_ pid: Int32) -> UInt64? {
    guard let text = readSmallFile("/proc/\(pid)/stat") else { return nil }
    // Fields after the ")" of comm: state is field 3; utime is 14, stime 15.
    guard let close = text.lastIndex(of: ")") else { return nil }
    let rest = text[text.index(after: close)...].split(separator: " ")
    guard rest.count > 13, let u = UInt64(rest[11]), let s = UInt64(rest[12]) else { return nil }
    let hz = UInt64(sysconf(Int32(_SC_CLK_TCK)))
    return (u + s) * 1_000_000_000 / max(hz, 1)
}

/// A "Key: N kB" value from /proc/PID/status (VmRSS, VmHWM) or smaps_rollup (Pss).
func procKB(_ pid: Int32, file: String, key: String) -> Int? {
    guard let text = readSmallFile("/proc/\(pid)/\(file)") else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 2, let v = Int(fields[1]) { return v }
    }
    return nil
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 8192)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 { out.append(contentsOf: buf[0..<n]) } else if n < 0 && errno == EINTR { continue } else { break }
    }
    return String(decoding: out, as: UTF8.self)
}

func loadAverage() -> String {
    let t = readSmallFile("/proc/loadavg") ?? ""
    return t.split(separator: " ").prefix(3).joined(separator: " ")
}

// MARK: - Threads

/// Starts `body` on a new POSIX thread.
func spawnThread(stackSize: Int = 256 * 1024, _ body: @escaping () -> Void) -> pthread_t {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    let ctx = Unmanaged.passRetained(Box(body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setstacksize(&attr, stackSize)
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, ctx)
    pthread_attr_destroy(&attr)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}

func joinThread(_ t: pthread_t) {
    pthread_join(t, nil)
}

/// Raises the open-file limit to the hard limit (idle mode needs one fd per connection).
func raiseFileLimit(to wanted: Int) -> Int {
    var lim = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
    let target = rlim_t(min(UInt64(wanted), UInt64(lim.rlim_max)))
    if lim.rlim_cur < target {
        lim.rlim_cur = target
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
    }
    return Int(lim.rlim_cur)
}
