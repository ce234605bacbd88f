import AuthCore
import AuthEngine
import AuthProtocol
import Benchmark
import Passdb
import SASL

#if canImport(Glibc)
import Glibc
#endif

// The hot paths of one SMTP login (docs/BENCHMARKS.md): an AUTH PLAIN line through the engine to its OK,
// the pieces of that path one by one, and a new connection to the real daemon (the Exim shape). Every
// benchmark reports wall time and mallocs per iteration; an iteration is one request (or one
// connection) unless the name says otherwise. Mallocs are counted for the whole process, so the socket
// benchmarks count the server's side too.

/// What the in-process benchmarks share, made by their setup in the benchmark's own process and
/// removed by its teardown.
final class EngineState {
    let directory = Fixture.makeDirectory()
    let usersPath: String
    /// The daemon's freshness rule: the passwd-file is `stat`ed at most once a second, on a background
    /// thread; the request that finds the check due waits for it (`BenchIO.drainBlocking`).
    let service: AuthService
    /// For the pieces: a table that never looks stale (check interval one hour), so every call is the
    /// in-place answer.
    let passdb: PasswdFilePassdb
    let chain: PassdbChain
    let passdbRequest = PassdbRequest(
        user: Fixture.user, mechanism: "PLAIN", service: "smtp", remoteIP: "10.1.2.3", localIP: "127.0.0.1",
        secured: true)
    let password = Secret(Fixture.password)
    let command: AuthCommand
    let plainMessage: [UInt8]
    let context = MechanismContext(hostname: "bench.example", realms: ["example.org"])
    let identity = ServerIdentity(pid: 1234, randomBytes: { n in SecureRandom.bytes(n) })
    /// The Postfix shape: one session for the whole run.
    let longLivedIO = BenchIO()
    private(set) var longLived: AuthClientSession!
    private var cuid: UInt64 = 0

    init() {
        usersPath = Fixture.writeUsers(in: directory)
        service = Fixture.makeService(usersPath: usersPath)
        passdb = Fixture.makePassdb(usersPath: usersPath, checkInterval: .seconds(3600))
        chain = PassdbChain([passdb])
        do {
            guard case .auth(let parsed) = try ClientMessageParser.parse(Fixture.authLineBytes) else { fatalError("not AUTH") }
            command = parsed
        } catch {
            fatalError("parse: \(error)")
        }
        guard case .bytes(let message) = command.initialResponse(clientMinor: 2) else { fatalError("no resp") }
        plainMessage = message
        longLived = newSession(longLivedIO)
    }

    /// A session whose handshake (VERSION, CPID) is done.
    func newSession(_ io: BenchIO) -> AuthClientSession {
        cuid += 1
        let service = self.service
        let session = AuthClientSession(io: io, cuid: cuid, peer: "pid=4242 uid=107", serviceProvider: { service })
        do {
            try session.handle(line: Fixture.versionLine[...])
            try session.handle(line: Fixture.cpidLine[...])
        } catch {
            fatalError("handshake: \(error)")
        }
        return session
    }

    func remove() {
        Fixture.removeDirectory(directory)
    }
}

nonisolated(unsafe) var engine: EngineState!
nonisolated(unsafe) var daemon: InProcessDaemon!

func expectOK(_ io: BenchIO) {
    guard io.replies == 1, io.lastReply == Fixture.expectedReply else {
        fatalError("unexpected reply (\(io.replies)): \(String(decoding: io.lastReply, as: UTF8.self))")
    }
}

let benchmarks: @Sendable () -> Void = {
    let makeEngine: Benchmark.BenchmarkSetupHook = { engine = EngineState() }
    let removeEngine: Benchmark.BenchmarkTeardownHook = {
        engine?.remove()
        engine = nil
    }
    let inProcess: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount]
    // Pieces that take well under a microsecond run 1000 times per iteration; with `--scale` the output
    // is per call.
    let micro = Benchmark.Configuration(
        metrics: inProcess, timeUnits: .nanoseconds, warmupIterations: 10, scalingFactor: .kilo,
        maxDuration: .seconds(2), maxIterations: 2_000, setup: makeEngine, teardown: removeEngine)
    let perRequest = Benchmark.Configuration(
        metrics: inProcess, timeUnits: .nanoseconds, warmupIterations: 1_000, scalingFactor: .one,
        maxDuration: .seconds(2), maxIterations: 200_000, setup: makeEngine, teardown: removeEngine)
    let startDaemon: Benchmark.BenchmarkSetupHook = {
        daemon = InProcessDaemon()
        try daemon.waitUntilListening()
    }
    let stopDaemon: Benchmark.BenchmarkTeardownHook = {
        await daemon?.stop()
        daemon = nil
    }
    let perConnection = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount],
        timeUnits: .microseconds, warmupIterations: 200, scalingFactor: .one,
        maxDuration: .seconds(3), maxIterations: 20_000, setup: startDaemon, teardown: stopDaemon)

    // MARK: - 1. AUTH line -> OK, in process

    // The Exim shape without sockets: a new session per request. Only the AUTH line is measured; the
    // session was made and its handshake done before.
    Benchmark("Engine: AUTH PLAIN line -> OK (new session, handshake done)", configuration: perRequest) { benchmark in
        let io = BenchIO()
        let session = engine.newSession(io)
        benchmark.startMeasurement()
        do {
            try session.handle(line: Fixture.authLineBytes[...])
        } catch {
            fatalError("AUTH: \(error)")
        }
        if io.hasPendingWork { io.drainBlocking() }
        benchmark.stopMeasurement()
        expectOK(io)
        blackHole(session)
    }

    // The Postfix shape: one long-lived session, one AUTH after another (the id is free again once its
    // OK is out).
    Benchmark("Engine: AUTH PLAIN line -> OK (one session, request after request)", configuration: perRequest) { benchmark in
        let io = engine.longLivedIO
        io.forgetReplies()
        do {
            try engine.longLived.handle(line: Fixture.authLineBytes[...])
        } catch {
            fatalError("AUTH: \(error)")
        }
        if io.hasPendingWork { io.drainBlocking() }
        expectOK(io)
    }

    // The whole engine side of an Exim connection: session made, greeting, VERSION, CPID, AUTH, OK,
    // connection closed.
    Benchmark("Engine: session + greeting + handshake + AUTH PLAIN -> OK + close", configuration: perRequest) { benchmark in
        let io = BenchIO()
        let session = engine.newSession(io)
        blackHole(session.greeting(identity: engine.identity))
        do {
            try session.handle(line: Fixture.authLineBytes[...])
        } catch {
            fatalError("AUTH: \(error)")
        }
        if io.hasPendingWork { io.drainBlocking() }
        session.connectionClosed()
        expectOK(io)
    }

    // MARK: - 2. The pieces

    // The request line -> AuthCommand (AuthProtocol).
    Benchmark("Piece: parse the AUTH line", configuration: micro) { benchmark in
        let line = Fixture.authLineBytes[...]
        for _ in benchmark.scaledIterations {
            do {
                blackHole(try ClientMessageParser.parse(line))
            } catch {
                fatalError("parse: \(error)")
            }
        }
    }

    // `resp=` -> the PLAIN message (AuthProtocol's base64), as the engine does before the mechanism.
    Benchmark("Piece: decode the base64 initial response", configuration: micro) { benchmark in
        let command = engine.command
        for _ in benchmark.scaledIterations {
            blackHole(command.initialResponse(clientMinor: 2))
        }
    }

    // The mechanism as the engine runs it (SASL): made from its descriptor, the message split into
    // authzid/authcid/password, then told the password was right.
    Benchmark("Piece: PLAIN mechanism (make, step, verified)", configuration: micro) { benchmark in
        let context = engine.context
        let message = engine.plainMessage
        for _ in benchmark.scaledIterations {
            var mechanism = MechanismDescriptor.plain.make(context)
            let step = mechanism.step(.start(initialResponse: message))
            guard case .verifyPlain(let identity, let password) = step else { fatalError("PLAIN: \(step)") }
            blackHole(identity)
            blackHole(password)
            blackHole(mechanism.step(.verified))
        }
    }

    // The passwd-file table: look the user up and compare the {PLAIN} password (Passdb).
    Benchmark("Piece: passwd-file {PLAIN} verify", configuration: micro) { benchmark in
        let passdb = engine.passdb, request = engine.passdbRequest, password = engine.password
        for _ in benchmark.scaledIterations {
            guard passdb.verifyPlainNow(request, password: password) == .ok else { fatalError("verify") }
        }
    }

    // The same through the passdb chain, as the engine asks it (`verifyNow`: freshness, fold, cache).
    Benchmark("Piece: passdb chain verifyNow (passwd-file {PLAIN})", configuration: micro) { benchmark in
        let chain = engine.chain, request = engine.passdbRequest, password = engine.password
        for _ in benchmark.scaledIterations {
            guard let verdict = chain.verifyNow(request, password: password), verdict.result == .ok else {
                fatalError("verifyNow")
            }
            blackHole(verdict)
        }
    }

    // The reply (AuthProtocol): `OK<TAB>id<TAB>user=...` with its escaping and LF.
    Benchmark("Piece: encode the OK reply", configuration: micro) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(ServerMessage.ok(id: 1, user: Fixture.user, fields: []).encoded())
        }
    }

    // MARK: - 3. Connections to the real daemon (its setup starts it in the benchmark's process)

    // The Exim shape: a new connection per AUTH. Here only the greeting: connect, read up to DONE, close.
    let greetingClient = UnixClient()
    Benchmark("Daemon: connect -> greeting (to DONE) -> close", configuration: perConnection) { _ in
        guard greetingClient.exchange(&daemon.address) else { fatalError("no greeting") }
    }

    // The whole Exim exchange: greeting, then VERSION + CPID + AUTH PLAIN in one write, the OK, close.
    let authClient = UnixClient(
        request: Array("VERSION\t1\t2\nCPID\t4242\n".utf8) + Fixture.authLineBytes + [0x0A])
    Benchmark("Daemon: connect -> greeting -> VERSION/CPID/AUTH PLAIN -> OK -> close", configuration: perConnection) { _ in
        guard authClient.exchange(&daemon.address, expect: Fixture.expectedReply) else { fatalError("no OK") }
    }
}
