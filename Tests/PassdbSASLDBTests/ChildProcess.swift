import AuthCore
import Foundation
import Passdb
import Testing

@testable import PassdbSASLDB

/// Child processes for the crash and multi-process tests: the test binary runs itself with
/// `--filter sasldbChildProcessRole` and an environment variable that says what to do. The test below
/// does nothing in a normal run.
enum ChildProcess {
    static let roleVariable = "SASLGATE_SASLDB_TEST_ROLE"
    static let storeVariable = "SASLGATE_SASLDB_TEST_STORE"
    static let sourceVariable = "SASLGATE_SASLDB_TEST_SOURCE"
    static let prefixVariable = "SASLGATE_SASLDB_TEST_PREFIX"
    static let countVariable = "SASLGATE_SASLDB_TEST_COUNT"

    /// A running child and its standard output, read line by line with a timeout.
    final class Child: @unchecked Sendable {
        let process: Process
        private let fd: Int32
        private var buffer: [UInt8] = []
        private(set) var eof = false

        init(process: Process, fd: Int32) {
            self.process = process
            self.fd = fd
        }

        /// The next line, or nil at end of output or after `timeout`.
        func readLine(timeout: Duration = .seconds(60)) -> String? {
            let deadline = ContinuousClock.now + timeout
            while true {
                if let nl = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    return line
                }
                if eof { return nil }
                let left = deadline - ContinuousClock.now
                if left <= .zero { return nil }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ms = Int32(clamping: left.components.seconds * 1000 + 1)
                let r = poll(&p, 1, ms)
                if r <= 0 { continue }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 {
                    eof = true
                } else {
                    buffer += chunk[0..<n]
                }
            }
        }

        /// Every remaining line until the child's output ends.
        func readRest() -> [String] {
            var out: [String] = []
            while let l = readLine(timeout: .seconds(30)) { out.append(l) }
            return out
        }

        func kill9() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        func wait() -> Int32 {
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// Starts this test binary as a child in `role`.
    static func spawn(role: String, environment: [String: String]) throws -> Child {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["--testing-library", "swift-testing", "--filter", "sasldbChildProcessRole"]
        var env = ProcessInfo.processInfo.environment
        env[roleVariable] = role
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return Child(process: p, fd: out.fileHandleForReading.fileDescriptor)
    }

    /// One line to the parent, unbuffered.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Blocks forever (until SIGKILL), holding whatever transaction is open.
    static func hang() -> Never {
        while true { sleep(60) }
    }
}

/// The child's side. In a normal test run the role variable is unset and this returns at once.
@Test func sasldbChildProcessRole() throws {
    let env = ProcessInfo.processInfo.environment
    guard let role = env[ChildProcess.roleVariable], let store = env[ChildProcess.storeVariable] else { return }
    let editor = SASLDBEditor(path: store)
    switch role {
    case "writer":
        // COUNT adds of PREFIX-i@example.org, each its own command (like separate CLI runs).
        let prefix = env[ChildProcess.prefixVariable] ?? "w"
        let count = Int(env[ChildProcess.countVariable] ?? "50") ?? 50
        var failures = 0
        for i in 0..<count {
            do {
                try editor.add(Fixtures.user("\(prefix)-\(i)", "example.org"), password: Secret("pw-\(i)"), policy: Fixtures.fastPolicy)
                ChildProcess.say("COMMITTED \(prefix)-\(i)")
            } catch {
                failures += 1
                ChildProcess.say("FAILED \(prefix)-\(i): \(error)")
            }
        }
        ChildProcess.say("DONE \(failures)")
    case "victim-add":
        // Writes a user and stops just before COMMIT; the parent kills it there.
        _ = try editor.add(
            Fixtures.user("victim", "example.org"), password: Secret("victim-password"), policy: Fixtures.fastAll,
            beforeCommit: { () throws(SASLDBError) in
                ChildProcess.say("READY")
                ChildProcess.hang()
            })
    case "victim-loop":
        // Adds users one command after another until killed; says which ones committed.
        var i = 0
        while true {
            try editor.add(Fixtures.user("loop-\(i)", "example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
            ChildProcess.say("COMMITTED loop-\(i)")
            i += 1
        }
    case "victim-import":
        guard let source = env[ChildProcess.sourceVariable] else { return }
        let importer = SASLDB2Importer(sourcePath: source, policy: Fixtures.fastAll)
        _ = try importer.run(
            into: store, dryRun: false,
            beforeCommit: { () throws(SASLDBError) in
                ChildProcess.say("READY")
                ChildProcess.hang()
            })
    default:
        Issue.record("unknown child role \(role)")
    }
}
