import AuthCore
import AuthCrypto
import Foundation
import Logging
import Passdb
import SASL
import Testing

@testable import PassdbSASLDB

/// A fresh directory under /tmp, removed at deinit.
final class TempDir: @unchecked Sendable {
    let path: String

    init(_ label: String = "sasldb") {
        var template = Array("/tmp/saslgate-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixtures {
    /// Fast secrets for tests that are about the store, not the hash: SSHA512 instead of yescrypt.
    static let fastPolicy = SASLDBSecretPolicy(kinds: [.hash], hashScheme: .ssha512)
    static let fastAll = SASLDBSecretPolicy(kinds: SASLDBProperty.allMechanismSecrets, hashScheme: .ssha512)

    static func user(_ name: String, _ realm: String? = nil) -> SASLDBUser {
        do {
            return try SASLDBUser(name: name, realm: realm)
        } catch {
            fatalError("bad test user \(name): \(error)")
        }
    }

    static func request(_ user: String, mechanism: String = "PLAIN") -> PassdbRequest {
        PassdbRequest(user: user, mechanism: mechanism, service: "smtp")
    }

    static let logger: Logger = {
        var l = Logger(label: "sasldb-test", factory: { _ in SwiftLogNoOpLogHandler() })
        l.logLevel = .critical
        return l
    }()

    /// A logger that keeps its lines, to check what is (and is not) logged.
    static func capturingLogger() -> (Logger, LogLines) {
        let lines = LogLines()
        var logger = Logger(label: "sasldb-test", factory: { _ in CapturingLogHandler(lines: lines) })
        logger.logLevel = .trace
        return (logger, lines)
    }

    static func passdb(_ path: String, checkInterval: Duration = .seconds(1), logger: Logger = Fixtures.logger) throws -> SASLDBPassdb {
        try SASLDBPassdb(path: path, executor: InlineExecutor(), logger: logger, checkInterval: checkInterval)
    }

    /// The whole file plus its -wal (everything SQLite may have written).
    static func storeBytes(_ path: String) -> [UInt8] {
        var out: [UInt8] = []
        for p in [path, path + "-wal", path + "-journal"] {
            if let d = FileManager.default.contents(atPath: p) { out += Array(d) }
        }
        return out
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
            i += 1
        }
        return false
    }

    static func mode(_ path: String) -> UInt32 {
        var st = stat()
        guard stat(path, &st) == 0 else { return 0 }
        return UInt32(st.st_mode) & 0o7777
    }

    /// `PRAGMA integrity_check` through a fresh connection.
    static func integrityCheck(_ path: String) throws -> String {
        let c = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMilliseconds: 5000)
        return try c.text("PRAGMA integrity_check") ?? "nothing"
    }

    /// Runs SQL on the store directly (test setup only: triggers, corruption).
    static func execute(_ path: String, _ sql: String) throws {
        let c = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMilliseconds: 5000)
        try c.execute(sql)
    }

    static func which(_ program: String) -> String? {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"] {
            let p = "\(dir)/\(program)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs a program, feeding `input`; returns (status, stdout, stderr).
    @discardableResult
    static func run(_ program: String, _ arguments: [String], input: String? = nil) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        let inPipe = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inPipe
        try p.run()
        if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try inPipe.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Makes a Cyrus sasldb2 with the real saslpasswd2; nil when sasl2-bin is not installed.
    static func saslpasswd2(_ file: String, user: String, realm: String, password: String) throws -> Bool? {
        guard let tool = which("saslpasswd2") else { return nil }
        let (status, _, err) = try run(tool, ["-p", "-f", file, "-c", "-u", realm, user], input: password)
        guard status == 0 else { throw TestFailure("saslpasswd2 failed (\(status)): \(err)") }
        return true
    }

    static let saslpasswd2Missing = "saslpasswd2 is not installed (Debian package sasl2-bin): the sasldb2 import tests need it"
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ s: String) {
        lock.lock()
        lines.append(s)
        lock.unlock()
    }
    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}

struct CapturingLogHandler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        lines.append("\(event.level) \(event.message) \(event.metadata ?? [:])")
    }
}

// MARK: running the SASL mechanisms against the passdb

/// Drives the mechanisms' own state machines with credentials from the passdb, as the engine does.
enum MechanismDriver {
    static let context = MechanismContext(hostname: "mail.example.org", realms: ["example.org"])

    /// CRAM-MD5: challenge, client response, credential lookup, verdict.
    static func cramMD5(_ db: SASLDBPassdb, user: String, password: String) async -> Bool {
        var mech = CRAMMD5Mechanism(context: context)
        guard case .challenge(let challenge) = mech.step(.start(initialResponse: nil)) else { return false }
        let response = CRAMMD5.response(user: user, password: Secret(password), challenge: challenge)
        guard case .lookupCredentials(let id, let scheme) = mech.step(.response(response)), scheme == .cramMD5 else {
            return false
        }
        guard case .found(let credential) = await db.lookupCredentials(Fixtures.request(id.authcid, mechanism: "CRAM-MD5"), scheme: scheme)
        else { return false }
        if case .success = mech.step(.credentials(credential)) { return true }
        return false
    }

    /// SCRAM-SHA-1 / SCRAM-SHA-256 with a client computed here from the RFC 5802 formulas.
    static func scram(_ db: SASLDBPassdb, hash: SCRAMHash, user: String, password: String) async -> Bool {
        var mech = SCRAMMechanism(hash: hash, context: context)
        let cnonce = "fyko+d2lbbFgONRv9qkxdawL"
        let bare = "n=\(user),r=\(cnonce)"
        let first = Array("n,,\(bare)".utf8)
        guard case .lookupCredentials(let id, let scheme) = mech.step(.start(initialResponse: first)) else { return false }
        let lookup = await db.lookupCredentials(Fixtures.request(id.authcid, mechanism: "SCRAM-\(hash.rawValue)"), scheme: scheme)
        guard case .found(let credential) = lookup else { return false }
        guard case .challenge(let serverFirstBytes) = mech.step(.credentials(credential)) else { return false }
        let serverFirst = String(decoding: serverFirstBytes, as: UTF8.self)
        var fields: [String: String] = [:]
        for part in serverFirst.split(separator: ",") {
            guard let eq = part.firstIndex(of: "=") else { continue }
            fields[String(part[..<eq])] = String(part[part.index(after: eq)...])
        }
        guard let nonce = fields["r"], let saltB64 = fields["s"], let salt = Data(base64Encoded: saltB64),
            let iterations = fields["i"].flatMap(Int.init)
        else { return false }
        let withoutProof = "c=biws,r=\(nonce)"
        let authMessage = Array("\(bare),\(serverFirst),\(withoutProof)".utf8)
        guard let salted = SCRAM.saltedPassword(hash: hash, password: Secret(password), salt: Array(salt), iterations: iterations)
        else { return false }
        let proof = SCRAM.clientProof(hash: hash, saltedPassword: salted, authMessage: authMessage)
        let final = Array("\(withoutProof),p=\(Data(proof).base64EncodedString())".utf8)
        guard case .success(let v?) = mech.step(.response(final)) else { return false }
        let expected = "v=" + Data(SCRAM.serverSignature(hash: hash, saltedPassword: salted, authMessage: authMessage)).base64EncodedString()
        return String(decoding: v, as: UTF8.self) == expected
    }

    /// DIGEST-MD5 (qop auth) as a client with `username`/`realm` spelled as given.
    static func digestMD5(_ db: SASLDBPassdb, username: String, realm: String, password: String) async -> Bool {
        var mech = DigestMD5Mechanism(context: context)
        guard case .challenge(let challengeBytes) = mech.step(.start(initialResponse: nil)) else { return false }
        let challenge = String(decoding: challengeBytes, as: UTF8.self)
        guard let start = challenge.range(of: "nonce=\"")?.upperBound,
            let end = challenge[start...].firstIndex(of: "\"")
        else { return false }
        let nonce = String(challenge[start..<end])
        let cnonce = "OA6MHXh6VqTrRk"
        let uri = "smtp/mail.example.org"
        let ha1 = DigestMD5.ha1(user: username, realm: realm, password: Secret(password))
        guard let (response, rspauth) = DigestMD5.digests(ha1: ha1, nonce: nonce, cnonce: cnonce, digestURI: uri) else { return false }
        let message =
            "username=\"\(username)\",realm=\"\(realm)\",nonce=\"\(nonce)\",cnonce=\"\(cnonce)\",nc=00000001,qop=auth,"
            + "digest-uri=\"\(uri)\",response=\(response),charset=utf-8"
        guard case .lookupCredentials(let id, let scheme) = mech.step(.response(Array(message.utf8))) else { return false }
        let name = id.realm.map { "\(id.authcid)@\($0)" } ?? id.authcid
        guard case .found(let credential) = await db.lookupCredentials(Fixtures.request(name, mechanism: "DIGEST-MD5"), scheme: scheme)
        else { return false }
        guard case .success(let final?) = mech.step(.credentials(credential)) else { return false }
        return String(decoding: final, as: UTF8.self) == "rspauth=\(rspauth)"
    }
}
