import AuthEngine
import Prometheus
import Synchronization

/// The daemon's metrics in a swift-prometheus registry, rendered in the Prometheus text format by
/// `saslgate stats` (through the control socket).
final class DaemonMetrics: AuthMetrics {
    let registry = PrometheusCollectorRegistry()
    private let counters: ServerCounters
    private let penalty: @Sendable () -> Int

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
    ]

    init(counters: ServerCounters, penaltyEntries: @escaping @Sendable () -> Int) {
        self.counters = counters
        self.penalty = penaltyEntries
    }

    /// The registry's handles for one (result, mechanism, passdb), made on first use: looking them up
    /// in the registry by name and labels for every request was 6 % of a {PLAIN} authentication.
    private struct HandleKey: Hashable {
        var result: String
        var mechanism: String
        var passdb: String?
    }
    private let handles = Mutex<[HandleKey: (counter: Counter, duration: DurationHistogram)]>([:])

    func requestFinished(result: String, mechanism: String, passdb: String?, seconds: Double) {
        let key = HandleKey(result: result, mechanism: mechanism, passdb: passdb)
        let (counter, duration) = handles.withLock { cached in
            if let found = cached[key] { return found }
            let made = (
                counter: registry.makeCounter(
                    descriptor: .init(namespace: "saslgate", metricName: "auth_requests", unitName: "total",
                                      helpText: "Finished authentication requests by result, mechanism and passdb"),
                    labels: [("result", result), ("mechanism", mechanism), ("passdb", passdb ?? "none")]),
                duration: registry.makeDurationHistogram(
                    descriptor: .init(namespace: "saslgate", metricName: "auth_duration", unitName: "seconds",
                                      helpText: "Time from AUTH to the final reply (including failure delays)"),
                    labels: [("mechanism", mechanism)], buckets: Self.latencyBuckets)
            )
            cached[key] = made
            return made
        }
        counter.increment()
        duration.record(.nanoseconds(Int64(seconds * 1e9)))
    }

    /// `saslgate_rehash_total{result="ok|failed|unchanged"}`: rewrites of `rehash_schemes`.
    func rehashFinished(result: String) {
        registry.makeCounter(
            descriptor: .init(namespace: "saslgate", metricName: "rehash", unitName: "total",
                              helpText: "Stored hashes replaced after a login (rehash_schemes) by result"),
            labels: [("result", result)]
        ).increment()
    }

    /// Current gauges, then the whole registry as Prometheus text.
    func render() -> [UInt8] {
        func gauge(_ name: String, _ help: String, _ value: Int) {
            registry.makeGauge(descriptor: .init(namespace: "saslgate", metricName: name, unitName: "", helpText: help))
                .set(Double(value))
        }
        gauge("connections", "Open client connections", counters.connections.load(ordering: .relaxed))
        gauge("pending_requests", "Unfinished requests on all connections", counters.pendingRequests.load(ordering: .relaxed))
        gauge("inflight_requests", "Requests the server is working on or delaying", counters.owedReplies.load(ordering: .relaxed))
        gauge("penalty_entries", "Keys in the brute-force penalty table", penalty())
        return registry.emitToBuffer()
    }
}
