#if canImport(Glibc)
import Glibc
#endif
import AuthServer
import Synchronization

/// The real daemon (`Daemon.run`, as `saslgated -c FILE` runs it) inside the benchmark process, on a Unix
/// socket in a temporary directory: so the malloc counts of a connection include the server's side.
/// Each benchmark runs in a process of its own (the benchmark tool's rule), so one daemon per process.
/// Request logging is off (`log_level = warning`): the one info line per request is not measured.
final class InProcessDaemon: @unchecked Sendable {
    let directory: String
    let socketPath: String
    /// The socket's address, made once.
    var address: sockaddr_un
    private let finished = Atomic<Bool>(false)

    init() {
        directory = Fixture.makeDirectory()
        socketPath = "\(directory)/auth"
        address = UnixClient.address(socketPath)
        let usersPath = Fixture.writeUsers(in: directory)
        let configPath = "\(directory)/saslgated.conf"
        Fixture.write(
            """
            listen = \(socketPath)
            listen_mode = 0600
            listen_user =
            listen_group =
            run_user =
            control_socket =
            mechanisms = plain login
            passdbs = passwd-file:\(usersPath)
            default_realm = example.org
            log_level = warning

            """, to: configPath, mode: 0o600)
        Task.detached { [self] in
            let status = await Daemon.run(configPath: configPath)
            self.finished.store(true, ordering: .releasing)
            if status != 0 { print("in-process saslgated stopped with status \(status)") }
        }
    }

    /// Waits until the socket accepts connections (at most 10 s).
    func waitUntilListening() throws {
        for _ in 0..<1000 {
            if finished.load(ordering: .acquiring) { break }
            let fd = UnixClient.connect(socketPath)
            if fd >= 0 {
                close(fd)
                return
            }
            usleep(10_000)
        }
        throw DaemonDidNotStart(path: socketPath)
    }

    /// SIGTERM to this process: the daemon's service group stops gracefully (it traps the signal), closes
    /// and removes its socket. Then the directory goes.
    func stop() async {
        kill(getpid(), SIGTERM)
        for _ in 0..<500 where !finished.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        Fixture.removeDirectory(directory)
    }
}

struct DaemonDidNotStart: Error, CustomStringConvertible {
    var path: String
    var description: String { "the in-process daemon did not start listening on \(path)" }
}

/// A blocking Unix-socket client that allocates nothing per connection: the address and the buffer are
/// made once, so the malloc counts are the server's (and the kernel's are not counted at all).
final class UnixClient {
    private var buffer = [UInt8](repeating: 0, count: 8192)
    private let request: [UInt8]
    private static let done = Array("DONE\n".utf8)
    private static let newline: [UInt8] = [0x0A]

    /// `request`: what to send once the greeting is in (nothing: just read the greeting and close).
    init(request: [UInt8] = []) {
        self.request = request
    }

    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    static func connect(_ path: String) -> Int32 {
        var address = UnixClient.address(path)
        return connect(&address)
    }

    static func connect(_ address: inout sockaddr_un) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            close(fd)
            return -1
        }
        return fd
    }

    /// One connection: connect, read the greeting up to `DONE`, send the request if any and read up to
    /// the line that starts with `expect`, close. False on any error or an unexpected reply.
    func exchange(_ address: inout sockaddr_un, expect: [UInt8] = []) -> Bool {
        let fd = UnixClient.connect(&address)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard readUntil(fd, endsWith: UnixClient.done) else { return false }
        guard !request.isEmpty else { return true }
        let sent = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard sent == request.count else { return false }
        guard readUntil(fd, endsWith: UnixClient.newline) else { return false }
        return buffer.starts(with: expect)
    }

    /// Reads into `buffer` (from its start) until what was read ends with `suffix`.
    private func readUntil(_ fd: Int32, endsWith suffix: [UInt8]) -> Bool {
        var filled = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + filled, raw.count - filled)
            }
            guard n > 0 else { return false }
            filled += n
            if filled >= suffix.count {
                var match = true
                for i in 0..<suffix.count where buffer[filled - suffix.count + i] != suffix[i] {
                    match = false
                    break
                }
                if match { return true }
            }
            if filled == buffer.count { return false }
        }
    }
}
