import Testing

@testable import AuthServer

/// `saslgate_rehash_total{result=...}` in the daemon's Prometheus registry.
@Suite struct RehashMetricsTests {
    @Test func rehashResultsAreCounted() {
        let metrics = DaemonMetrics(counters: ServerCounters(), penaltyEntries: { 0 })
        metrics.rehashFinished(result: "ok")
        metrics.rehashFinished(result: "ok")
        metrics.rehashFinished(result: "failed")
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains("saslgate_rehash_total{result=\"ok\"} 2"))
        #expect(text.contains("saslgate_rehash_total{result=\"failed\"} 1"))
    }
}
