import AuthConfig
import AuthCore
import AuthEngine
import Logging
import Passdb
import Synchronization

/// A transport with a manual clock: output is collected, async work is drained explicitly.
final class FakeIO: ConnectionIO {
    var output: [String] = []
    /// Each `send` as one string: one entry per write the engine asked for.
    var writes: [String] = []
    var clock = 0.0
    private var pending: [() async -> Void] = []
    private var timers: [(due: Double, id: Int, body: () -> Void)] = []
    private var cancelled = Set<Int>()
    private var nextTimer = 0

    final class Timer: ScheduledWork {
        let cancelBody: () -> Void
        init(_ cancelBody: @escaping () -> Void) { self.cancelBody = cancelBody }
        func cancel() { cancelBody() }
    }

    func send(_ bytes: [UInt8]) {
        writes.append(String(decoding: bytes, as: UTF8.self))
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            output.append(String(line))
        }
    }

    func runDetached<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void) {
        let task = Task { await work() }
        pending.append { completion(await task.value) }
    }

    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> any ScheduledWork {
        nextTimer += 1
        let id = nextTimer
        timers.append((clock + seconds, id, body))
        return Timer { [weak self] in self?.cancelled.insert(id) }
    }

    func now() -> Double { clock }

    /// Timers scheduled and neither fired nor cancelled.
    var activeTimers: Int { timers.filter { !cancelled.contains($0.id) }.count }

    /// Finishes all detached work (and work it starts).
    func drain() async {
        while !pending.isEmpty {
            let next = pending.removeFirst()
            await next()
        }
    }

    /// Moves the clock, firing due timers in order.
    func advance(by seconds: Double) async {
        let end = clock + seconds
        while let next = timers.filter({ $0.due <= end }).min(by: { $0.due < $1.due }) {
            timers.removeAll { $0.id == next.id }
            clock = max(clock, next.due)
            if !cancelled.contains(next.id) { next.body() }
            await drain()
        }
        clock = end
    }

    func take() -> [String] {
        defer { output.removeAll() }
        return output
    }
}

/// An in-memory passdb with forced outcomes for some users.
struct MemoryPassdb: PasswordDatabase {
    var name = "memory:test"
    var driver = "memory"
    var capabilities = PassdbCapabilities(verifyPlain: true)
    var users: [String: String]
    var forced: [String: PassdbResult] = [:]

    func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        if let f = forced[request.user] { return f }
        guard let stored = users[request.user] else { return .userUnknown }
        return password.constantTimeEquals(Array(stored.utf8)) ? .ok : .passwordMismatch
    }

    func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        guard let stored = users[request.user] else { return .userUnknown }
        return .found(.plaintext(Secret(stored)))
    }
}

func makeService(
    _ configure: (inout Settings) -> Void = { _ in },
    passdbs: [any PasswordDatabase] = [MemoryPassdb(users: ["test@example.org": "testpass", "bob": "bobpass"])]
) throws -> AuthService {
    try AuthService(settings: testSettings(configure), passdbs: passdbs, hostname: "test.example", logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
}

/// The settings `makeService` starts from: a 2 s failure delay and the default realm example.org.
func testSettings(_ configure: (inout Settings) -> Void = { _ in }) -> Settings {
    var settings = Settings()
    settings.failureDelay = 2
    settings.defaultRealm = "example.org"
    configure(&settings)
    return settings
}

/// Keeps every request log record, at every level.
final class RecordingRequestLog: AuthRequestLog {
    private let stored = Mutex<[AuthLogRecord]>([])

    var records: [AuthLogRecord] { stored.withLock { $0 } }

    func isEnabled(_ level: Logger.Level) -> Bool { true }

    func write(_ record: AuthLogRecord, level: Logger.Level) {
        stored.withLock { $0.append(record) }
    }
}

func makeSession(_ service: AuthService, io: FakeIO) -> AuthClientSession {
    AuthClientSession(io: io, cuid: 1, peer: "test", serviceProvider: { service })
}

extension AuthClientSession {
    func feed(_ line: String) throws {
        try handle(line: Array(line.utf8)[...])
    }

    func handshake(minor: Int = 0) throws {
        try feed("VERSION\t1\t\(minor)")
        try feed("CPID\t42")
    }
}
