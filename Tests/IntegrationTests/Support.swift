import AuthProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The built `saslgated` next to this test bundle (`.build/<config>/saslgated`).
func builtExecutable(_ name: String) -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return name
}

/// A `saslgated` started on a temporary directory with its own config, users file and socket.
final class DaemonUnderTest: @unchecked Sendable {
    let dir: String
    let socketPath: String
    let usersPath: String
    let configPath: String
    let logPath: String
    let process = Process()

    static let users = """
        # test users
        test@example.org:{PLAIN}testpass
        alice@example.org:{SHA512-CRYPT}$6$saltsaltsalt$KcXAKLfVRe.7ajZBx/KhznC.zxmAFljzkBtpUHasI1tJulPdrZUmM1tBj/UIAqYVKpGpKcGU7LAMtDuNtZi.C/
        bob:{PLAIN}bobpass
        """

    init(
        extraConfig: String = "", users: String = DaemonUnderTest.users, environment: [String: String] = [:],
        launcher: [String] = [], mechanisms: String = "plain login", extraListen: String = ""
    ) throws {
        dir = NSTemporaryDirectory() + "saslgate-it-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        socketPath = dir + "/auth"
        usersPath = dir + "/users"
        configPath = dir + "/saslgated.conf"
        logPath = dir + "/saslgated.log"
        try users.write(toFile: usersPath, atomically: true, encoding: .utf8)
        chmod(usersPath, 0o640)
        let config = """
            listen = \(socketPath) \(extraListen)
            listen_mode = 0600
            listen_user =
            listen_group =
            run_user =
            control_socket = \(dir)/control
            mechanisms = \(mechanisms)
            passdbs = passwd-file:\(usersPath)
            default_realm = example.org
            failure_delay = 0
            log_level = debug
            \(extraConfig)
            """
        // Keys given in extraConfig replace the base ones (duplicate keys are a config error).
        let overridden = Set(extraConfig.split(separator: "\n").compactMap { $0.split(separator: "=").first?.trimmingCharacters(in: .whitespaces) })
        let merged = config.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            guard let key = line.split(separator: "=").first?.trimmingCharacters(in: .whitespaces) else { return true }
            return !overridden.contains(key) || extraConfig.contains(String(line))
        }.joined(separator: "\n")
        try merged.write(toFile: configPath, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        if launcher.isEmpty {
            process.executableURL = URL(fileURLWithPath: builtExecutable("saslgated"))
            process.arguments = ["-c", configPath]
        } else {
            process.executableURL = URL(fileURLWithPath: launcher[0])
            process.arguments = Array(launcher.dropFirst()) + [builtExecutable("saslgated"), "-c", configPath]
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        let waitPath = launcher.contains("-l") ? launcher[launcher.firstIndex(of: "-l")! + 1] : socketPath
        // The control socket is bound right after the auth socket: wait for both when both are used (a
        // socket-activated daemon starts only with its first connection: nothing more to wait for then).
        var waitPaths = [waitPath]
        if launcher.isEmpty && merged.contains("control_socket = \(dir)/control") { waitPaths.append(dir + "/control") }
        for path in waitPaths {
            while !FileManager.default.fileExists(atPath: path) {
                guard Date() < deadline, process.isRunning else {
                    throw TestFailure("saslgated did not start: \(log)")
                }
                usleep(20_000)
            }
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func connect() throws -> AuthClient { try AuthClient(path: socketPath) }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for `text` to appear in the log.
    func waitForLog(_ text: String, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return true }
            usleep(50_000)
        }
        return false
    }

    func rewriteConfig(_ transform: (String) -> String) throws {
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        try transform(text).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// SIGTERM, then SIGKILL after 10 s. A launcher that never ran saslgated (systemd-socket-activate
    /// before its first connection) may have inherited SIGTERM blocked from the test's thread; and
    /// Foundation's `waitUntilExit` can hang when it misses a child's exit under load: so the exit is
    /// polled with a deadline, never waited for without one.
    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                let killed = Date().addingTimeInterval(5)
                while process.isRunning && Date() < killed { usleep(20_000) }
            }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }
}

/// Waits for `p` to exit by polling, as `stop()` does (Foundation's `waitUntilExit` can hang when it
/// misses a child's exit under load); after `limit`, SIGKILL and a few seconds more. True when it exited
/// within `limit`.
@discardableResult
func waitForExit(_ p: Process, limit: TimeInterval = 10) -> Bool {
    let deadline = Date().addingTimeInterval(limit)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    guard p.isRunning else { return true }
    kill(p.processIdentifier, SIGKILL)
    let killed = Date().addingTimeInterval(5)
    while p.isRunning && Date() < killed { usleep(20_000) }
    return false
}

/// Runs a built executable (`saslgated`, `saslgate`) to completion, with `input` on its standard input
/// when given: exit status and stdout+stderr.
func runBuilt(_ name: String, _ arguments: [String], input: String? = nil) throws -> (code: Int32, out: String) {
    let p = Process()
    let pipe = Pipe()
    p.executableURL = URL(fileURLWithPath: builtExecutable(name))
    p.arguments = arguments
    p.standardOutput = pipe
    p.standardError = pipe
    let stdin = input.map { _ in Pipe() }
    if let stdin { p.standardInput = stdin }
    try p.run()
    if let stdin, let input {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
    }
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, out)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A blocking AF_UNIX client with read timeouts.
final class AuthClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    /// A client of the socket at `path`. With `retryFor`, a refused connection is tried again until
    /// then (a socket just bound by systemd-socket-activate may not listen yet).
    convenience init(path: String, retryFor seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                try self.init(path: path)
                return
            } catch {
                guard Date() < deadline else { throw error }
                usleep(50_000)
            }
        }
    }

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(path.utf8)
            raw.copyBytes(from: b)
            raw[b.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); throw TestFailure("connect \(path): errno \(errno)") }
    }

    /// A TCP client of `host` (a numeric IPv4 or IPv6 address) and `port`.
    init(inet host: String, port: Int) throws {
        let v6 = host.contains(":")
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var storage = sockaddr_storage()
        let length: Int
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &a.sin6_addr)
            withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
            length = MemoryLayout<sockaddr_in6>.size
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &a.sin_addr)
            withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
            length = MemoryLayout<sockaddr_in>.size
        }
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(length)) }
        }
        guard rc == 0 else { close(fd); throw TestFailure("connect \(host):\(port): errno \(errno)") }
    }

    deinit { close(fd) }

    /// Every byte the server sends until it closes the connection (or `timeout` passes: then nil).
    func readUntilClosed(timeout: Double = 5) -> [UInt8]? {
        var out = buffer
        buffer.removeAll()
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000)) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }  // EOF (or a reset: closed all the same)
            out.append(contentsOf: chunk[0..<n])
        }
    }

    func send(_ text: String) { sendBytes(Array(text.utf8)) }

    func sendBytes(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Next line without LF; nil on EOF or timeout.
    func readLine(timeout: Double = 5) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let lf = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<lf], as: UTF8.self)
                buffer.removeSubrange(...lf)
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000)) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// True if the server closed the connection (EOF) within the timeout.
    func isClosedByServer(timeout: Double = 5) -> Bool {
        while let _ = readLine(timeout: timeout) {}
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return false }
        var b: UInt8 = 0
        return recv(fd, &b, 1, Int32(MSG_DONTWAIT)) == 0
    }

    /// Reads the server greeting up to DONE.
    @discardableResult
    func readGreeting() -> [String] {
        var lines: [String] = []
        while let line = readLine() {
            lines.append(line)
            if line == "DONE" { break }
        }
        return lines
    }

    /// Postfix style: VERSION 1 0 + CPID first, then the greeting.
    func postfixHandshake() {
        send("VERSION\t1\t0\nCPID\t4583\n")
        readGreeting()
    }
}

func b64(_ s: String) -> String { DovecotBase64.encode(Array(s.utf8)) }

/// A TCP port that was free on `host` a moment ago (bound to port 0, read back, closed).
func freePort(host: String = "127.0.0.1") throws -> Int {
    let v6 = host.contains(":")
    let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var storage = sockaddr_storage()
    var length = socklen_t(v6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    if v6 {
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        inet_pton(AF_INET6, host, &a.sin6_addr)
        withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
    } else {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, host, &a.sin_addr)
        withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
    }
    let bound = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("cannot bind a free port on \(host): errno \(errno)") }
    let port = withUnsafeBytes(of: storage) { raw in UInt16(raw[2]) << 8 | UInt16(raw[3]) }
    return Int(port)
}

/// True when this machine has `host` (e.g. `::1`) to bind to.
func canBind(_ host: String) -> Bool { (try? freePort(host: host)) != nil }
