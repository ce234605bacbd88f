#if canImport(Glibc)
import Glibc
#endif
import AuthConfig
import CProcess
import AuthCore
import AuthEngine
import AuthProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Passdb
import PassdbRegistry
import SASL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Exit statuses (sysexits.h).
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let software: Int32 = 70
    public static let osError: Int32 = 71
    public static let config: Int32 = 78
    /// `--check`: the configuration is right but a passdb's server did not answer (EX_UNAVAILABLE).
    public static let unavailable: Int32 = 69
}

/// The configuration generation currently in force; swapped whole on reload.
final class ServiceBox: Sendable {
    private let current: Mutex<Daemon.Built>
    init(_ built: Daemon.Built) { current = Mutex(built) }
    /// What requests are served with.
    var service: AuthService { current.withLock { $0.service } }
    /// Who may connect (`client_allowlist`); a connection is checked once, when it is made.
    var allowlist: PeerAllowlist { current.withLock { $0.allowlist } }
    /// The settings of the generation in service (for what the server itself reads: timeouts, paths,
    /// `inet_clients`).
    var settings: Settings { current.withLock { $0.settings } }
    /// The TLS context of the TCP endpoints (`inet_tls_cert`, `inet_tls_key`); nil without TLS.
    var tls: NIOSSLContext? { current.withLock { $0.tls } }
    func replace(_ built: Daemon.Built) { current.withLock { $0 = built } }
}

/// Wires settings, passdbs, the engine and the NIO server together. Tests and `main` use the same code.
public enum Daemon {
    /// Reads the configuration file, with the passdb drivers of the registry.
    static func load(_ configPath: String) throws(ConfigErrors) -> Settings {
        try Settings.load(path: configPath, passdbDrivers: PassdbRegistry.catalog)
    }

    /// Everything that can be built from the settings without binding a socket.
    struct Built: Sendable {
        var settings: Settings
        var service: AuthService
        var allowlist: PeerAllowlist
        /// TLS for the TCP endpoints, read from its files (before the privileges are dropped at start).
        var tls: NIOSSLContext?
    }

    /// What `validate` found good: the parts of `Built` that need no passdb.
    struct Validated {
        var allowlist: PeerAllowlist
        var tls: NIOSSLContext?
    }

    /// Checks the files, the allowlist and the TLS files: everything but the passdbs (quick; start-up
    /// does this before it binds the sockets).
    static func validate(_ settings: Settings) throws(ConfigErrors) -> Validated {
        var errors = fileProblems(settings)
        let (allowlist, unknown) = PeerAllowlist.resolve(settings.clientAllowlist)
        errors += unknown.map { ConfigError(file: settings.file, line: settings.lines["client_allowlist"], $0) }
        var tls: NIOSSLContext?
        do {
            tls = try InetTLS.context(settings)
        } catch {
            errors += error.errors
        }
        // Nothing is opened from files that are refused.
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return Validated(allowlist: allowlist, tls: tls)
    }

    /// Checks the files and the allowlist (unless `validated` already did), opens the passdbs (which may
    /// load large tables) and builds the engine's service. Start-up, `--check` and reload all come
    /// through here.
    static func build(
        _ settings: Settings, validated: Validated? = nil, executor: any BlockingExecutor, logger: Logger,
        penalty: PenaltyTable? = nil, metrics: (any AuthMetrics)? = nil, requestLog: (any AuthRequestLog)? = nil
    ) throws(ConfigErrors) -> Built {
        let checked: Validated
        if let validated { checked = validated } else { checked = try validate(settings) }
        let (allowlist, tls) = (checked.allowlist, checked.tls)
        let chain = try PassdbRegistry.openChain(settings, executor: executor, logger: logger)
        let service = try AuthService(
            settings: settings, chain: chain, hostname: hostname(settings), logger: logger, penalty: penalty,
            metrics: metrics, requestLog: requestLog)
        return Built(settings: settings, service: service, allowlist: allowlist, tls: tls)
    }

    /// A world-writable configuration or secret file, or a world-readable secret file, stops the start.
    static func fileProblems(_ settings: Settings) -> [ConfigError] {
        var errors: [ConfigError] = []
        do {
            try FileSafety.checkNotWorldWritable(settings.file, what: "the configuration")
        } catch {
            errors.append(ConfigError(file: settings.file, line: nil, "\(error)"))
        }
        for spec in PassdbRegistry.secretFiles(in: settings.passdbs) {
            do {
                try FileSafety.checkSecretFile(spec.argument, what: "the \(spec.driver) user file")
            } catch {
                errors.append(ConfigError(file: settings.file, line: spec.line, "\(error)"))
            }
        }
        return errors
    }

    static func hostname(_ settings: Settings) -> String {
        if !settings.hostname.isEmpty { return settings.hostname }
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "localhost" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `saslgated --check`: validate, print what would be served, exit status.
    public static func check(configPath: String) async -> Int32 {
        var logger = Logger(label: "saslgated", factory: { SaslgateLogHandler(label: $0, level: .warning) })
        logger.logLevel = .warning
        do {
            let built = try build(load(configPath), executor: InlineExecutor(), logger: logger)
            print("\(configPath): configuration OK")
            for endpoint in built.settings.listen {
                switch endpoint {
                case .unix(let path):
                    print("listen \(path): Unix socket, mode 0\(String(built.settings.listenMode, radix: 8)), owner \(built.settings.listenUser ?? "(as created)"):\(built.settings.listenGroup ?? "(as created)")\(built.settings.clientAllowlist.isEmpty ? "" : ", client_allowlist \(built.settings.clientAllowlist.joined(separator: " "))")")
                case .inet:
                    print("listen \(endpoint): TCP\(built.settings.inetTLS ? " with TLS (1.2 or newer)" : ", plain text"), inet_clients \(built.settings.inetClientsText)")
                }
            }
            if !built.settings.inetTLS && built.settings.listen.contains(where: \.isInet) {
                print("note: the TCP endpoints are plain text: Postfix sends the passwords over them unencrypted; keep them on a private or container network")
            }
            if built.settings.inetTLS && !built.settings.listen.contains(where: \.isInet) {
                print("note: inet_tls_cert/inet_tls_key apply only to TCP sockets (inet: endpoints, or TCP sockets systemd passes); listen has none")
            }
            for db in built.service.chain.passdbs {
                let mechs = MechanismRegistry.all.filter { d in
                    switch d.need {
                    case .nothing: false  // needs no passdb (ANONYMOUS): not this passdb's doing
                    case .verifyPlain: db.capabilities.verifyPlain
                    case .verifyToken: db.capabilities.verifyToken
                    case .credentials(let s): db.capabilities.credentials.contains(s)
                    }
                }.map(\.name)
                print("passdb \(db.name): serves \(mechs.isEmpty ? "nothing" : mechs.joined(separator: " "))")
            }
            print("advertised mechanisms: \(built.service.advertised.map(\.name).joined(separator: " "))")
            for name in built.service.unservable {
                print("warning: mechanism \(name) is configured but no passdb can verify it; it is not advertised")
            }
            if built.service.advertised.contains(where: { $0.name == "ANONYMOUS" }) {
                print("WARNING: ANONYMOUS is offered: anyone can authenticate as \(built.settings.anonymousUsername ?? "?"); with Postfix's permit_sasl_authenticated that is an OPEN RELAY")
            }
            if built.settings.cleartextRequiresTLS == false {
                print("warning: cleartext_requires_tls = no: PLAIN/LOGIN passwords are accepted on connections without TLS")
            }
            let network = PassdbRegistry.networkNeeds(built.settings)
            print(network.isEmpty
                ? "network: not needed (Unix sockets only)"
                : "network: needed by \(network.joined(separator: ", ")) (under systemd: the drop-in /etc/systemd/system/saslgated.service.d/network.conf, from systemd/dropins/network.conf or /usr/share/saslgate/network.conf)")
            // Databases and directories: connect and run one lookup, as the daemon would.
            var unreachable = false
            for db in built.service.chain.passdbs {
                guard let probe = await db.probe() else { continue }
                print("passdb \(db.name): \(probe.reachable ? "reachable" : "NOT reachable"): \(probe.lines.joined(separator: "; "))")
                unreachable = unreachable || !probe.reachable
            }
            await built.service.chain.close()
            return unreachable ? ExitStatus.unavailable : ExitStatus.ok
        } catch {
            printError(error.description)
            return ExitStatus.config
        }
    }

    /// Runs the daemon until SIGTERM/SIGINT. SIGHUP re-reads the configuration and passdbs.
    public static func run(configPath: String) async -> Int32 {
        // SIGHUP is trapped first: one that comes while the daemon starts (say, right after the socket
        // appears) is answered with a reload once the reloader runs, instead of ending the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        // The file is read once, before anything logs: its log level applies from the first line, and a
        // broken file is logged at the default level.
        let loaded = Result { () throws(ConfigErrors) in try load(configPath) }
        let level = (try? loaded.get()).map { Logger.Level(configName: $0.logLevel) } ?? .info
        LoggingSystem.bootstrap { SaslgateLogHandler(label: $0, level: level) }
        // A PAM module writing to a pipe whose reader is gone must not kill the daemon.
        signal(SIGPIPE, SIG_IGN)
        let logger = Logger(label: "saslgated")
        let settings: Settings
        switch loaded {
        case .success(let s): settings = s
        case .failure(let error):
            for e in error.errors { logger.error("configuration error: \(e)") }
            return ExitStatus.config
        }
        // The one line per request, in the handler's format but without going through a dictionary.
        let requestLog = StderrRequestLog(level: level, lineFormat: LogLineFormat(label: "saslgated"))

        let cores = System.coreCount
        let pool = NIOThreadPool(numberOfThreads: settings.hashThreads > 0 ? settings.hashThreads : cores)
        pool.start()
        let executor = ThreadPoolExecutor(pool: pool)

        let counters = ServerCounters()
        let penaltyProbe = PenaltyProbe()
        let metrics = DaemonMetrics(counters: counters, penaltyEntries: { penaltyProbe.count() })
        // The configuration first (quick), then the sockets: they are bound and listening before the
        // passdbs load, so clients can connect at once; their connections wait in the kernel's backlog
        // and get the greeting once the chain is ready (a large passwd-file takes a while to read).
        let validated: Validated
        do {
            validated = try validate(settings)
        } catch {
            for e in error.errors { logger.error("configuration error: \(e)") }
            try? await pool.shutdownGracefully()
            return ExitStatus.config
        }
        let listeners: [Listener]
        do {
            try AuthServer.checkRunUser(settings)
            listeners = try AuthServer.openListeners(settings, logger: logger)
        } catch {
            logger.error("\(error)")
            try? await pool.shutdownGracefully()
            return ExitStatus.osError
        }
        let loadStart = ContinuousClock.now
        let built: Built
        do {
            built = try build(
                settings, validated: validated, executor: executor, logger: logger, metrics: metrics,
                requestLog: requestLog)
        } catch {
            for e in error.errors { logger.error("configuration error: \(e)") }
            // Nobody is served: the sockets close and the socket files we made go (if still ours).
            Listeners.close(listeners)
            try? await pool.shutdownGracefully()
            return ExitStatus.config
        }
        logger.debug("passdbs ready in \(ContinuousClock.now - loadStart)")
        for name in built.service.unservable {
            logger.warning("mechanism \(name) is configured but no passdb can verify it; not advertised")
        }
        if built.service.advertised.contains(where: { $0.name == "ANONYMOUS" }) {
            logger.warning("ANONYMOUS is offered: anyone can authenticate as \(built.settings.anonymousUsername ?? "?"); behind Postfix's permit_sasl_authenticated this is an open relay")
        }
        raiseFileLimit(logger: logger)

        let box = ServiceBox(built)
        penaltyProbe.set { box.service.penalty.count }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.eventLoops > 0 ? settings.eventLoops : cores)
        let control = built.settings.controlSocket.map { ControlServer(path: $0, metrics: metrics, box: box, logger: logger) }
        let server = AuthServer(
            settings: built.settings, box: box, group: group, logger: logger, counters: counters, control: control,
            listeners: listeners)
        let reloader = ReloadService(
            configPath: configPath, hangups: hangups, box: box, executor: executor, logger: logger, metrics: metrics,
            requestLog: requestLog)
        var lifecycleLogger = logger
        lifecycleLogger.logLevel = max(.info, logger.logLevel)
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: server), .init(service: reloader)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: lifecycleLogger))
        var status = ExitStatus.ok
        do {
            try await serviceGroup.run()
        } catch {
            logger.error("\(error)")
            status = ExitStatus.osError
        }
        await box.service.chain.close()
        try? await group.shutdownGracefully()
        try? await pool.shutdownGracefully()
        logger.info("stopped")
        return status
    }

    /// No core dumps, and no ptrace or /proc/PID/mem by other processes of the same user: a core would
    /// hold the user table and the passwords of requests in flight. Called first thing by `main`.
    /// The kernel resets the dumpable flag to fs.suid_dumpable when the process changes its user, so
    /// RLIMIT_CORE goes to 0 as well: a resource limit survives the switch to `run_user`.
    public static func disableCoreDumps() {
        _ = saslgate_set_dumpable(0)
        if saslgate_get_dumpable() != 0 {
            printError("warning: could not make the process non-dumpable (prctl PR_SET_DUMPABLE)")
        }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_CORE.rawValue), &limit) == 0, limit.rlim_cur != 0 || limit.rlim_max != 0 else { return }
        limit = rlimit(rlim_cur: 0, rlim_max: 0)
        if setrlimit(Int32(RLIMIT_CORE.rawValue), &limit) != 0 {
            printError("warning: could not set the core file size limit to 0: \(String(cString: strerror(errno)))")
        }
    }

    static func raiseFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("could not raise the open file limit: \(String(cString: strerror(errno)))")
        }
    }

    static func printError(_ text: String) {
        let line = text + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

extension Logger.Level {
    init(configName: String) {
        switch configName {
        case "debug": self = .debug
        case "notice": self = .notice
        case "warning": self = .warning
        case "error": self = .error
        default: self = .info
        }
    }
}

/// SIGHUP: build a new configuration generation and swap it in; a broken one is rejected and the old
/// one keeps serving. Open connections keep running and use the new passdbs for their next request;
/// a new `client_allowlist` applies to the connections made after the reload.
struct ReloadService: Service, CustomStringConvertible {
    var description: String { "ReloadService" }
    let configPath: String
    /// SIGHUP, trapped since start-up.
    let hangups: UnixSignalsSequence
    let box: ServiceBox
    let executor: any BlockingExecutor
    let logger: Logger
    let metrics: DaemonMetrics
    let requestLog: any AuthRequestLog

    func run() async throws {
        for await _ in hangups.cancelOnGracefulShutdown() {
            logger.info("SIGHUP: reloading \(configPath)")
            SystemdNotify.reloading()
            defer { SystemdNotify.ready(status: "serving; mechanisms \(box.service.advertised.map(\.name).joined(separator: " "))") }
            do {
                // The new passdbs load on a thread of their own (a large passwd-file takes a while):
                // the requests keep running on the cooperative pool, answered by the old generation.
                let (configPath, executor, logger, penalty, metrics, requestLog) = (
                    configPath, executor, logger, box.service.penalty, metrics, requestLog
                )
                let built = try await onBackgroundThread { () throws(ConfigErrors) -> Daemon.Built in
                    try Daemon.build(
                        Daemon.load(configPath), executor: executor, logger: logger, penalty: penalty,
                        metrics: metrics, requestLog: requestLog)
                }
                if built.settings.inetTLS != box.settings.inetTLS {
                    let line = built.settings.lines["inet_tls_cert"] ?? built.settings.lines["inet_tls_key"]
                        ?? box.settings.lines["inet_tls_cert"]
                    let where_ = "\(built.settings.file)\(line.map { ":\($0)" } ?? "")"
                    logger.error("reload rejected, old configuration stays in service: \(where_): TLS on the inet: endpoints was switched \(built.settings.inetTLS ? "on" : "off"); that takes a restart (systemctl restart saslgated)")
                    continue
                }
                if built.settings.listen != box.settings.listen {
                    logger.warning("reload: 'listen' changed; the new endpoints take effect only after a restart")
                }
                for (key, changed) in [("event_loops", built.settings.eventLoops != box.settings.eventLoops),
                                       ("hash_threads", built.settings.hashThreads != box.settings.hashThreads)] where changed {
                    logger.warning("reload: '\(key)' changed; the new number of threads takes effect only after a restart")
                }
                let old = box.service.chain
                box.replace(built)
                // Requests already running on the old passdbs may finish; idle connections go now, the
                // rest after request_timeout.
                let grace = Duration.milliseconds(Int64(built.settings.requestTimeout * 1000))
                Task.detached {
                    await old.retire()
                    try? await Task.sleep(for: grace)
                    await old.close()
                }
                logger.info("reload done: mechanisms \(built.service.advertised.map(\.name).joined(separator: " "))")
            } catch {
                for e in error.errors { logger.error("reload rejected, old configuration stays in service: \(e)") }
            }
        }
    }
}

/// Lets the metrics read the penalty table's size without owning the service box.
final class PenaltyProbe: Sendable {
    private let probe = Mutex<(@Sendable () -> Int)?>(nil)
    func set(_ f: @escaping @Sendable () -> Int) { probe.withLock { $0 = f } }
    func count() -> Int { probe.withLock { $0 }?() ?? 0 }
}
