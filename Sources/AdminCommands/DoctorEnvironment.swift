#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Everything `saslgate doctor` learns from the machine, so the checks can run against a fake in tests.
public protocol DoctorEnvironment {
    /// Runs a program (found in PATH) and returns its exit status and output.
    func run(_ arguments: [String]) -> DoctorProcessResult
    /// A small text file's contents, nil if unreadable.
    func readFile(_ path: String) -> String?
    /// Names in a directory, nil if it cannot be listed.
    func listDirectory(_ path: String) -> [String]?
    /// `stat(2)` (following symbolic links, as connect(2) does), or the errno text.
    func status(_ path: String) -> Result<DoctorFileStatus, DoctorSystemError>
    /// A user with its groups, nil if unknown.
    func account(named name: String) -> DoctorAccount?
    func userName(uid: UInt32) -> String?
    func groupName(gid: UInt32) -> String?
    /// Connects to an auth-client socket and reads its greeting up to DONE.
    func greeting(socketPath: String, timeout: Duration) -> Result<DoctorGreeting, DoctorGreetingError>
    /// The uid the doctor runs as.
    var effectiveUID: UInt32 { get }
}

public struct DoctorProcessResult: Sendable, Equatable {
    /// Exit status; 127 when the program could not be started.
    public var status: Int32
    public var output: String
    public var errorOutput: String

    public init(status: Int32, output: String, errorOutput: String) {
        self.status = status
        self.output = output
        self.errorOutput = errorOutput
    }

    /// The last non-empty line of standard error (postconf's `fatal: ...`), or a fallback.
    public var lastError: String {
        let lines = errorOutput.split(separator: "\n").map { $0.doctorTrimmed() }.filter { !$0.isEmpty }
        return lines.last ?? "exit status \(status)"
    }
}

public struct DoctorSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int32
    public var description: String

    public init(code: Int32, description: String) {
        self.code = code
        self.description = description
    }

    public var isMissing: Bool { code == ENOENT || code == ENOTDIR }
    public var isPermission: Bool { code == EACCES || code == EPERM }
}

/// The real machine.
public struct SystemDoctorEnvironment: DoctorEnvironment {
    public init() {}

    /// Longest output read from a program or file.
    static let outputLimit = 4 * 1024 * 1024
    /// A program that runs longer than this is killed.
    static let programTimeout: Duration = .seconds(20)

    public var effectiveUID: UInt32 { geteuid() }

    public func run(_ arguments: [String]) -> DoctorProcessResult {
        DoctorProcess.run(
            arguments, timeout: SystemDoctorEnvironment.programTimeout, limit: SystemDoctorEnvironment.outputLimit)
    }

    public func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < SystemDoctorEnvironment.outputLimit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func listDirectory(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func status(_ path: String) -> Result<DoctorFileStatus, DoctorSystemError> {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            return .failure(DoctorSystemError(code: e, description: String(cString: strerror(e))))
        }
        return .success(DoctorFileStatus(mode: UInt32(st.st_mode), uid: st.st_uid, gid: st.st_gid))
    }

    public func account(named name: String) -> DoctorAccount? {
        guard let pw = getpwnam(name) else { return nil }
        let uid = pw.pointee.pw_uid
        let gid = pw.pointee.pw_gid
        var count: Int32 = 256
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(name, gid, &groups, &count) < 0 { count = 0 }
        }
        return DoctorAccount(name: name, uid: uid, gid: gid, groups: Array(groups.prefix(Int(max(0, count)))))
    }

    public func userName(uid: UInt32) -> String? {
        guard let pw = getpwuid(uid) else { return nil }
        return String(cString: pw.pointee.pw_name)
    }

    public func groupName(gid: UInt32) -> String? {
        guard let gr = getgrgid(gid) else { return nil }
        return String(cString: gr.pointee.gr_name)
    }

    public func greeting(socketPath: String, timeout: Duration) -> Result<DoctorGreeting, DoctorGreetingError> {
        do throws(CLIError) {
            let connection = try Connection(path: socketPath, deadline: ContinuousClock.now + timeout, timeout: timeout)
            defer { connection.close() }
            // What Postfix sends: VERSION 1 0 and CPID, at once.
            try connection.sendHandshake(minor: 0)
            var lines: [[String]] = []
            while lines.count < 256 {
                let fields = try connection.readFields()
                lines.append(fields)
                if fields.first == "DONE" { break }
            }
            return DoctorGreeting.parse(lines)
        } catch {
            return .failure(DoctorGreetingError(error.message))
        }
    }
}

/// A child process with its standard output and error captured (posix_spawn, no Foundation).
enum DoctorProcess {
    static func run(_ arguments: [String], timeout: Duration, limit: Int) -> DoctorProcessResult {
        guard let program = arguments.first else {
            return DoctorProcessResult(status: 127, output: "", errorOutput: "no program")
        }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0 else { return failure("pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0])
            close(outPipe[1])
            return failure("pipe: \(String(cString: strerror(errno)))")
        }
        // Not inherited by other children (the dup2 below clears FD_CLOEXEC on the copies).
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        var cArgs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, program, &actions, nil, &cArgs, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            return DoctorProcessResult(
                status: 127, output: "", errorOutput: "\(program): \(String(cString: strerror(rc)))")
        }

        var out: [UInt8] = []
        var err: [UInt8] = []
        var open = [outPipe[0], errPipe[0]]
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while !open.isEmpty {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero {
                timedOut = true
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ms = Int32(clamping: remaining.components.seconds * 1000 + 1)
            let n = poll(&fds, nfds_t(fds.count), ms)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            for p in fds where p.revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 65536)
                let got = chunk.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if got < 0 && errno == EINTR { continue }
                if got <= 0 {
                    close(p.fd)
                    open.removeAll { $0 == p.fd }
                    continue
                }
                if p.fd == outPipe[0] {
                    if out.count < limit { out += chunk[..<got] }
                } else if err.count < limit {
                    err += chunk[..<got]
                }
            }
        }
        for fd in open { close(fd) }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitStatus: Int32 =
            timedOut ? 124 : ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
        var errText = String(decoding: err, as: UTF8.self)
        if timedOut { errText += "\n\(program): killed after \(timeout)" }
        return DoctorProcessResult(
            status: exitStatus, output: String(decoding: out, as: UTF8.self), errorOutput: errText)
    }

    private static func failure(_ message: String) -> DoctorProcessResult {
        DoctorProcessResult(status: 127, output: "", errorOutput: message)
    }
}
