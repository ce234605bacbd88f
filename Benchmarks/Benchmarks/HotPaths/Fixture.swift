#if canImport(Glibc)
import Glibc
#endif
import AuthConfig
import Dispatch
import AuthCore
import AuthEngine
import AuthProtocol
import Logging
import Passdb

/// What every benchmark works with: a small passwd-file of `{PLAIN}` users on disk (mode 0600), the
/// login that succeeds, and the client lines of one Exim/Postfix-style AUTH PLAIN.
enum Fixture {
    static let user = "alice@example.org"
    static let password = "s3cret"
    /// Users in the table besides `user`: a small site.
    static let otherUsers = 99

    /// `base64("\0alice@example.org\0s3cret")`.
    static let initialResponse = DovecotBase64.encode(Array("\0\(user)\0\(password)".utf8))

    /// The request Postfix's smtpd sends for `AUTH PLAIN <resp>` on a TLS session.
    static func authLine(id: UInt32) -> String {
        "AUTH\t\(id)\tPLAIN\tservice=smtp\tlip=127.0.0.1\trip=10.1.2.3\tsecured\tno-penalty\tresp=\(initialResponse)"
    }

    static let authLineBytes = Array(authLine(id: 1).utf8)
    static let versionLine = Array("VERSION\t1\t2".utf8)
    static let cpidLine = Array("CPID\t4242".utf8)
    static let expectedReply = Array("OK\t1\tuser=\(user)\n".utf8)

    static let quietLogger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A fresh directory under /tmp (mode 0700), removed by `removeDirectory`.
    static func makeDirectory() -> String {
        var template = Array("/tmp/saslgate-bench.XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let p = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: p)
        }
        guard let path else { fatalError("mkdtemp failed: \(String(cString: strerror(errno)))") }
        return path
    }

    static func removeDirectory(_ path: String) {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { unlink("\(path)/\(name)") }
        }
        closedir(dir)
        rmdir(path)
    }

    /// Writes `text` to `path` with `mode`.
    static func write(_ text: String, to path: String, mode: mode_t) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        precondition(fd >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(written == bytes.count, "short write to \(path)")
        fchmod(fd, mode)
        close(fd)
    }

    /// The users file: `alice@example.org:{PLAIN}s3cret` among `otherUsers` others, mode 0600.
    static func writeUsers(in directory: String) -> String {
        var text = "# saslgate benchmark users\n"
        for n in 0..<otherUsers { text += "user\(n)@example.org:{PLAIN}password\(n)\n" }
        text += "\(user):{PLAIN}\(password)\n"
        let path = "\(directory)/users"
        write(text, to: path, mode: 0o600)
        return path
    }

    /// The engine's service over a passwd-file passdb, as the daemon builds it from the defaults
    /// (`mechanisms = plain login`, no auth cache, `default_realm` example.org), with logging off.
    /// `checkInterval` is the daemon's one second unless a piece benchmark wants the table never to
    /// look stale.
    static func makeService(usersPath: String, checkInterval: Duration = .seconds(1)) -> AuthService {
        var settings = Settings()
        settings.defaultRealm = "example.org"
        let passdb = makePassdb(usersPath: usersPath, checkInterval: checkInterval)
        do {
            return try AuthService(settings: settings, passdbs: [passdb], hostname: "bench.example", logger: quietLogger)
        } catch {
            fatalError("AuthService: \(error)")
        }
    }

    static func makePassdb(usersPath: String, checkInterval: Duration) -> PasswdFilePassdb {
        do {
            return try PasswdFilePassdb(
                path: usersPath, defaultRealm: "example.org", executor: InlineExecutor(), logger: quietLogger,
                checkInterval: checkInterval)
        } catch {
            fatalError("passwd-file: \(error)")
        }
    }
}

/// The engine's transport for in-process runs: replies are counted and the last one kept; detached
/// work (a passdb that must hash or re-check its file) is run when the caller drains; timers never fire
/// (the request-timeout sweep is armed but a benchmark iteration is far shorter than it).
final class BenchIO: ConnectionIO {
    private(set) var replies = 0
    private(set) var lastReply: [UInt8] = []
    private var pending: [() async -> Void] = []

    /// One handle for every timer: the engine only ever cancels it.
    private final class NoTimer: ScheduledWork, Sendable {
        func cancel() {}
    }
    private static let noTimer = NoTimer()

    func send(_ bytes: [UInt8]) {
        replies += 1
        lastReply = bytes
    }

    func runDetached<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void) {
        let task = Task { await work() }
        pending.append { completion(await task.value) }
    }

    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> any ScheduledWork {
        BenchIO.noTimer
    }

    func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    var hasPendingWork: Bool { !pending.isEmpty }

    /// Finishes the detached work (the once-a-second path where the passwd-file is `stat`ed first),
    /// blocking the calling thread (the benchmark's, not one of the concurrency pool's) meanwhile. The
    /// benchmark closures stay synchronous: the tool's `--allocation-stacks` handles only those.
    func drainBlocking() {
        struct Work: @unchecked Sendable { var jobs: [() async -> Void] }
        let work = Work(jobs: pending)
        pending = []
        let done = DispatchSemaphore(value: 0)
        Task {
            for job in work.jobs { await job() }
            done.signal()
        }
        done.wait()
        if !pending.isEmpty { drainBlocking() }
    }

    func forgetReplies() {
        replies = 0
    }
}
