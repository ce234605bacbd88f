import AuthConfig
import Dispatch
import Logging
import Passdb
import PassdbRegistry
import Synchronization

/// The live side of the passdbs for the CLI: `doctor`'s reachability lines and `auth test --explain`'s
/// lookup lines. The chain is opened here, in the CLI's process, from the daemon's configuration (so
/// the CLI must be able to read the passdbs' files, normally as root), and closed again.
enum PassdbProbes {
    /// One line per passdb that has something remote to reach (a database, a directory).
    static func reachability(_ settings: Settings) -> [DoctorFinding] {
        withChain(settings, empty: []) { chain in
            var findings: [DoctorFinding] = []
            for db in chain.passdbs {
                guard let probe = await db.probe() else { continue }
                let detail = probe.lines.joined(separator: "; ")
                findings.append(
                    probe.reachable
                        ? .ok("passdb \(db.name) is reachable: \(detail)")
                        : .fail("passdb \(db.name) is not reachable: \(detail)",
                            fix: "start the server or fix the connection settings in \(db.name); until then every login through it fails with a temporary error"))
            }
            return findings
        } opened: { error in
            [.warning("the passdbs cannot be opened here, so their servers were not checked: \(error)",
                fix: "run doctor as root, or fix the passdbs entries and their files")]
        }
    }

    /// What each passdb does for `request`, prefixed with its name.
    static func explain(_ request: PassdbRequest, settings: Settings) -> [String] {
        withChain(settings, empty: []) { chain in
            var lines: [String] = []
            for db in chain.passdbs {
                for line in await db.explain(request) { lines.append("\(db.name): \(line)") }
            }
            return lines
        } opened: { error in
            ["the passdbs cannot be opened here: \(error)"]
        }
    }

    /// Opens the chain, runs `body` on it and closes it, waiting on this (non-async) thread.
    private static func withChain<T: Sendable>(
        _ settings: Settings, empty: T, _ body: @escaping @Sendable (PassdbChain) async -> T,
        opened failure: (ConfigErrors) -> T
    ) -> T {
        // Files and PAM have nothing remote to reach or explain: no chain, no waiting.
        guard !PassdbRegistry.networkNeeds(settings).filter({ $0.hasPrefix("passdb ") }).isEmpty else {
            return empty
        }
        var logger = Logger(label: "saslgate")
        logger.logLevel = .error
        let chain: PassdbChain
        do {
            chain = try PassdbRegistry.openChain(settings, executor: InlineExecutor(), logger: logger)
        } catch {
            return failure(error)
        }
        return waitFor {
            let result = await body(chain)
            for db in chain.passdbs { await db.close() }
            return result
        }
    }
}

/// Runs async work from a synchronous command and waits for it. Only for the CLI's main thread, never
/// inside an async context.
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let slot = ResultSlot<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let value = await body()
        slot.value.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return slot.value.withLock { $0! }
}

/// Where `waitFor`'s task leaves its result.
private final class ResultSlot<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
}
