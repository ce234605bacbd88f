import AuthCore
import Foundation
import Passdb
import PassdbPAM
import Testing

/// Throughput of PAM checks (good passwords) at concurrency 1, 4 and 16: not a timed test, a
/// measurement. Runs only with SASLGATE_PAM_BENCH=1, e.g.
///   SASLGATE_PAM_BENCH=1 swift test --filter PAMBenchmark
/// Optional: SASLGATE_PAM_BENCH_SECONDS (per cell, default 3).
@Suite("PAMBenchmark", .serialized, .enabled(if: ProcessInfo.processInfo.environment["SASLGATE_PAM_BENCH"] == "1"))
struct PAMBenchmark {
    static let levels = [1, 4, 16]
    static var seconds: Double {
        Double(ProcessInfo.processInfo.environment["SASLGATE_PAM_BENCH_SECONDS"] ?? "") ?? 3
    }

    struct Row {
        var name: String
        var perSecond: [Double]
        var failures: Int
    }

    /// Runs `concurrency` loops of checks for `seconds`; returns checks per second and non-ok results.
    func measure(_ db: PAMPassdb, user: String, password: String, concurrency: Int) async -> (Double, Int) {
        // Warm up the threads and the page cache.
        for _ in 0..<concurrency { _ = await db.verifyPlain(request(user), password: Secret(password)) }
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(PAMBenchmark.seconds * 1000))
        let (count, failures) = await withTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var n = 0
                    var bad = 0
                    while ContinuousClock.now < deadline {
                        if await db.verifyPlain(request(user), password: Secret(password)) != .ok { bad += 1 }
                        n += 1
                    }
                    return (n, bad)
                }
            }
            var total = (0, 0)
            for await (n, bad) in group { total = (total.0 + n, total.1 + bad) }
            return total
        }
        let (s, atto) = (ContinuousClock.now - start).components
        return (Double(count) / (Double(s) + Double(atto) / 1e18), failures)
    }

    func row(_ name: String, _ db: PAMPassdb, user: String, password: String) async -> Row {
        var rates: [Double] = []
        var failures = 0
        for c in PAMBenchmark.levels {
            let (rate, bad) = await measure(db, user: user, password: password, concurrency: c)
            rates.append(rate)
            failures += bad
        }
        return Row(name: name, perSecond: rates, failures: failures)
    }

    @Test func throughput() async throws {
        var rows: [Row] = []
        let options = PAMOptions(maxConcurrency: 16, timeout: .seconds(9))

        let dir = try PAMConfDir()
        defer { dir.remove() }
        let table = try dir.pwdfile("users", [("benchuser", "bench-password-1")])
        try dir.service("pwdfile", ["auth required pam_pwdfile.so pwdfile=\(table)", "account required pam_permit.so"])
        let pwdfile = try makePassdb(dir, service: "pwdfile", options: options)
        rows.append(await row("pam_pwdfile ($6$ sha512-crypt)", pwdfile, user: "benchuser", password: "bench-password-1"))

        let wrong = try makePassdb(dir, service: "pwdfile", options: options)
        var wrongRow = await row("pam_pwdfile, wrong password", wrong, user: "benchuser", password: "nope")
        wrongRow.failures = 0  // every one fails by design; the point is that none waits 2 s
        rows.append(wrongRow)

        if SystemUsers.isRoot {
            SystemUsers.removeStale(prefix: "sgbench")
            let user = "sgbench\(getpid() % 100_000)"
            try SystemUsers.create(user, password: "bench-password-2")
            defer { SystemUsers.delete(user) }
            try dir.service("unix", ["auth required pam_unix.so", "account required pam_unix.so"])
            let unix = try makePassdb(dir, service: "unix", options: options)
            let hash = (try? String(contentsOfFile: "/etc/shadow", encoding: .utf8))?
                .split(separator: "\n").first { $0.hasPrefix("\(user):") }?
                .split(separator: ":")[1].prefix(3) ?? "?"
            rows.append(await row("pam_unix (\(hash) from chpasswd)", unix, user: user, password: "bench-password-2"))
        } else {
            print("PAMBenchmark: not root, pam_unix skipped")
        }

        var out = "\nPAM checks per second (good passwords unless noted), \(PAMBenchmark.seconds)s per cell, "
        out += "\(ProcessInfo.processInfo.activeProcessorCount) cores\n"
        let header = "backend".padding(toLength: 34, withPad: " ", startingAt: 0)
            + PAMBenchmark.levels.map { "c=\($0)".leftPadded(10) }.joined() + "  failures"
        out += header + "\n" + String(repeating: "-", count: header.count) + "\n"
        for r in rows {
            out += r.name.padding(toLength: 34, withPad: " ", startingAt: 0)
            out += r.perSecond.map { String(format: "%.0f/s", $0).leftPadded(10) }.joined()
            out += "  \(r.failures)\n"
        }
        print(out)
        #expect(rows.allSatisfy { $0.failures == 0 })
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
