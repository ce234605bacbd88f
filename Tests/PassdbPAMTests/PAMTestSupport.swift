import AuthCore
import Foundation
import Logging
import Passdb
@testable import PassdbPAM

/// A temporary PAM configuration directory (for `pam_start_confdir`), removed by `remove()`.
final class PAMConfDir: @unchecked Sendable {
    let path: String

    init() throws {
        let template = NSTemporaryDirectory() + "saslgate-pam-test.XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw TestFailure("mkdtemp failed") }
        path = String(cString: made)
    }

    /// Writes SERVICE with the given PAM lines.
    func service(_ name: String, _ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: "\(path)/\(name)", atomically: true, encoding: .utf8)
    }

    /// Writes a file in the directory and returns its path.
    @discardableResult
    func file(_ name: String, _ contents: String, mode: Int = 0o600) throws -> String {
        let p = "\(path)/\(name)"
        try contents.write(toFile: p, atomically: true, encoding: .utf8)
        chmod(p, mode_t(mode))
        return p
    }

    /// A pam_pwdfile table (`user:crypt-hash`), SHA512-CRYPT hashes.
    @discardableResult
    func pwdfile(_ name: String, _ users: [(String, String)]) throws -> String {
        var text = ""
        for (user, password) in users {
            text += "\(user):\(try sha512Crypt(password))\n"
        }
        return try file(name, text)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// `$6$...` for a password (via the Passdb module's crypt support).
func sha512Crypt(_ password: String) throws -> String {
    let field = try PasswordScheme.sha512Crypt.hash(Secret(password))
    guard let close = field.firstIndex(of: "}") else { throw TestFailure("unexpected hash field") }
    return String(field[field.index(after: close)...])
}

func request(_ user: String, rip: String? = "192.0.2.7") -> PassdbRequest {
    PassdbRequest(user: user, mechanism: "PLAIN", service: "smtp", remoteIP: rip, secured: true)
}

/// A Logger that keeps every line in memory, to check what was (and was not) logged.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    var logger: Logger {
        Logger(label: "pam-test") { _ in CapturingHandler(log: self) }
    }
}

struct CapturingHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        log.append("\(event.level) \(event.message) \(fields)")
    }
}

let quietLogger = Logger(label: "pam-test") { _ in SwiftLogNoOpLogHandler() }

func makePassdb(
    _ dir: PAMConfDir, service: String, options: PAMOptions = PAMOptions(), defaultRealm: String? = "example.org",
    logger: Logger = quietLogger
) throws -> PAMPassdb {
    var options = options
    options.confDir = dir.path
    return try PAMPassdb(service: service, options: options, defaultRealm: defaultRealm, logger: logger)
}

/// Seconds taken by `body`.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let value = try await body()
    let d = ContinuousClock.now - start
    let (s, atto) = d.components
    return (value, Double(s) + Double(atto) / 1e18)
}

/// Polls `condition` every 10 ms up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

// MARK: - Throwaway system users (root only)

enum SystemUsers {
    /// Prefix of every user these tests create; stale ones from a crashed run are removed first.
    static let prefix = "sgtest"

    static var isRoot: Bool { getuid() == 0 }

    @discardableResult
    static func run(_ argv: [String], stdin: String? = nil) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Users in /etc/passwd whose name starts with `prefix`.
    static func existing(prefix: String) -> [String] {
        guard let text = try? String(contentsOfFile: "/etc/passwd", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let name = line.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            return name.hasPrefix(prefix) ? name : nil
        }
    }

    /// Removes users left behind by an earlier run that crashed (same prefix, any pid).
    static func removeStale(prefix: String) {
        for name in existing(prefix: prefix) {
            _ = try? run(["/usr/sbin/userdel", name])
        }
    }

    /// Creates `name` (no home, nologin shell) with `password`; returns after chpasswd.
    static func create(_ name: String, password: String) throws {
        _ = try? run(["/usr/sbin/userdel", name])
        let (rc, out) = try run(["/usr/sbin/useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name])
        guard rc == 0 else { throw TestFailure("useradd \(name) failed: \(out)") }
        let (rc2, out2) = try run(["/usr/sbin/chpasswd"], stdin: "\(name):\(password)\n")
        guard rc2 == 0 else {
            _ = try? run(["/usr/sbin/userdel", name])
            throw TestFailure("chpasswd failed: \(out2)")
        }
    }

    static func delete(_ name: String) {
        _ = try? run(["/usr/sbin/userdel", name])
    }

    static func chage(_ args: [String]) throws {
        let (rc, out) = try run(["/usr/bin/chage"] + args)
        guard rc == 0 else { throw TestFailure("chage \(args) failed: \(out)") }
    }
}
