import AuthConfig
import AuthCore
import Logging
import Synchronization
import Testing

@testable import Passdb

#if canImport(Glibc)
import Glibc
#endif

/// `rehash_schemes`: the policy's syntax, which stored fields it wants replaced, and the rewrite of a
/// passwd-file after a successful login (once, atomically, failures logged and harmless).
@Suite struct RehashTests {
    static let ssha = "{SSHA}wQlfDRC2U2VxQ+eMKr7SFL0BmVgBAgMEBQYHCA=="
    static let sha512Low = "{SHA512-CRYPT}$6$rounds=6000$abcdefgh$VJ6N1EIawf/rHrxwRoMtgA4whrLwdLmrR4wZQV5339RchWgNDWH37VBvRrpRbkWJU/VXGL7gy033koLeZQmPC1"
    static let policyText = "PLAIN MD5-CRYPT SSHA DES-CRYPT SHA512-CRYPT<rounds=100000 -> CRYPT"

    static func policy(_ text: String = policyText) -> RehashPolicy {
        let (schemes, problems) = RehashSchemes.parse(text)
        precondition(problems.isEmpty, "\(problems)")
        return RehashPolicy(schemes!)!
    }

    @Test func parsesTheDocumentedForm() throws {
        let (schemes, problems) = RehashSchemes.parse("PLAIN MD5-CRYPT SSHA SHA512-CRYPT<rounds=100000 -> CRYPT")
        #expect(problems.isEmpty)
        #expect(schemes?.target == "CRYPT")
        #expect(schemes?.sources.map(\.scheme) == ["PLAIN", "MD5-CRYPT", "SSHA", "SHA512-CRYPT"])
        #expect(schemes?.sources.last?.below?.value == 100000)
        #expect(RehashSchemes.parse("").0 == nil && RehashSchemes.parse("").1.isEmpty)
    }

    @Test(arguments: [
        ("PLAIN", "must be 'SOURCE ... -> TARGET'"),
        ("PLAIN -> PLAIN", "the target 'PLAIN' must be one of"),
        ("ROT13 -> CRYPT", "unknown source scheme 'ROT13'"),
        ("SSHA<rounds=5 -> CRYPT", "'SSHA<rounds=5' must be written SSHA (it takes no bound)"),
        ("SHA512-CRYPT<cost=5 -> CRYPT", "must be written SHA512-CRYPT<rounds=N"),
        ("SHA512-CRYPT -> SHA512-CRYPT", "both a source and the target"),
        (" -> CRYPT", "no source scheme"),
    ])
    func refusesWithTheFix(text: String, message: String) {
        let (schemes, problems) = RehashSchemes.parse(text)
        #expect(schemes == nil)
        #expect(problems.contains { $0.contains(message) }, "\(problems)")
    }

    /// Every name the configuration accepts maps to a scheme of this build.
    @Test func everyConfigNameIsAScheme() {
        for name in RehashSchemes.sourceNames where name != "DES-CRYPT" { #expect(PasswordScheme(name: name) != nil, "\(name)") }
        for name in RehashSchemes.targetNames { #expect(PasswordScheme(name: name).map(PasswordScheme.hashable.contains) == true) }
    }

    @Test func wantsWeakAndLegacyHashesOnly() throws {
        let p = Self.policy()
        func wants(_ field: String) throws -> Bool { p.wantsRehash(try StoredPassword(field: field)) }
        #expect(try wants("{PLAIN}pencil"))
        #expect(try wants("{MD5-CRYPT}$1$aBK1ZAHx$nxIjQy1Njk5GL9Kl4/Go//"))
        #expect(try wants("{CRYPT}$1$aBK1ZAHx$nxIjQy1Njk5GL9Kl4/Go//"))  // MD5 inside {CRYPT}
        #expect(try wants("{crypt}abJ32bJMdTsnY"))  // DES
        #expect(try wants(Self.ssha))
        #expect(try wants(Self.sha512Low))
        #expect(try wants("{SHA512-CRYPT}$6$jX7HZaIGTnR4iQO3$K9IfADgv5VUgLIKp1m1d/FyRFWpqsuRpSsMU..55OahsDWJT/rYPBGBIBxIBUkdN.L62jc1O5G.zdaQ4j95RX0"))
        #expect(try !wants("{SHA512-CRYPT}$6$rounds=200000$abcdefgh$VJ6N1EIawf/rHrxwRoMtgA4whrLwdLmrR4wZQV5339RchWgNDWH37VBvRrpRbkWJU/VXGL7gy033koLeZQmPC1"))
        #expect(try !wants("{CRYPT}$y$j9T$I1wXowWy./cSma7rNYiVP/$vfz/GGbr3e3ouIbiiQwGMoMfPO9PoxLjrWPkttC6c0A"))
        #expect(try !wants("{SSHA512}wu9joCR/0MuLFribrOU3FD3ChStGElsN7uDfJFgXgHiRuo7+1Owm0AnVZIWBduOkBsjxcLSBl2LyrUJKZmMxqsBzXyo="))
    }

    static func login(_ chain: PassdbChain, _ user: String = "alice@example.org", _ password: String = "pencil") async -> PassdbResult {
        await chain.verify(PassdbRequest(user: user, mechanism: "PLAIN", service: "smtp"), password: Secret(Array(password.utf8))).result
    }

    static func chain(_ passdb: PasswdFilePassdb, logger: Logger, results: ResultLog) -> PassdbChain {
        var chain = PassdbChain([passdb])
        chain.rehasher = Rehasher(policy: policy(), logger: logger) { results.append($0) }
        return chain
    }

    /// Each legacy scheme: the login succeeds, the file then holds `{CRYPT}$y$`, the next login works,
    /// other fields and the file's mode stay.
    @Test(arguments: [
        "{PLAIN}pencil", "{MD5-CRYPT}$1$aBK1ZAHx$nxIjQy1Njk5GL9Kl4/Go//", "{crypt}abJ32bJMdTsnY", ssha, sha512Low,
    ])
    func rehashesEachLegacySchemeInAPasswdFile(field: String) async throws {
        let dir = TempDir()
        let path = dir.write("users", "# users\nalice@example.org:\(field):1000:1000::/home/alice::userdb_quota=1G\nbob@example.org:{PLAIN}x\n", mode: 0o600)
        let passdb = try PasswdFilePassdb(path: path, executor: CountingExecutor(), logger: Logger(label: "t"))
        let results = ResultLog()
        let chain = Self.chain(passdb, logger: Logger(label: "t"), results: results)
        #expect(await Self.login(chain) == .ok)
        #expect(await eventually { results.all == ["ok"] })
        let text = readText(path) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("alice@") }.map(String.init) ?? ""
        #expect(line.hasPrefix("alice@example.org:{CRYPT}$y$"))
        #expect(line.hasSuffix(":1000:1000::/home/alice::userdb_quota=1G"))
        #expect(text.hasPrefix("# users\n") && text.contains("\nbob@example.org:{PLAIN}x\n"))
        #expect(fileMode(path) == 0o600)
        #expect(passdb.table.password(forUser: "alice@example.org")?.scheme == .crypt)
        #expect(await Self.login(chain) == .ok)
        #expect(await Self.login(chain, "alice@example.org", "wrong") == .passwordMismatch)
        try await Task.sleep(for: .milliseconds(50))
        #expect(results.all == ["ok"], "a strong hash is not rehashed again")
    }

    /// A `{PLAIN}` entry answered on the caller's thread (`verifyNow`) still rehashes, off that thread.
    @Test func rehashesFromTheInlinePath() async throws {
        let dir = TempDir()
        let path = dir.write("users", "alice@example.org:{PLAIN}pencil\n")
        let passdb = try PasswdFilePassdb(path: path, executor: CountingExecutor(), logger: Logger(label: "t"))
        let results = ResultLog()
        let chain = Self.chain(passdb, logger: Logger(label: "t"), results: results)
        let now = chain.verifyNow(PassdbRequest(user: "alice@example.org", mechanism: "PLAIN", service: "smtp"), password: Secret(Array("pencil".utf8)))
        #expect(now?.result == .ok)
        #expect(await eventually { results.all == ["ok"] })
        #expect(readText(path)?.hasPrefix("alice@example.org:{CRYPT}$y$") == true)
    }

    /// Many concurrent logins of one user: one rewrite.
    @Test func concurrentLoginsRehashOnce() async throws {
        let dir = TempDir()
        let path = dir.write("users", "alice@example.org:\(Self.ssha)\n")
        let passdb = try PasswdFilePassdb(path: path, executor: CountingExecutor(), logger: Logger(label: "t"))
        let results = ResultLog()
        let chain = Self.chain(passdb, logger: Logger(label: "t"), results: results)
        await withTaskGroup(of: PassdbResult.self) { group in
            for _ in 0..<20 { group.addTask { await Self.login(chain) } }
            for await r in group { #expect(r == .ok) }
        }
        #expect(await eventually { !results.all.isEmpty })
        try await Task.sleep(for: .milliseconds(300))
        #expect(results.all.filter { $0 == "ok" }.count == 1, "\(results.all)")
        #expect(await Self.login(chain) == .ok)
    }

    /// The rewrite fails (the editor cannot take its lock: `users.lock` is a directory, which stops
    /// root too): logged with the fix, the login succeeded, the file is unchanged and still serves.
    @Test func failedRewriteStillLogsIn() async throws {
        let dir = TempDir()
        let path = dir.write("users", "alice@example.org:{PLAIN}pencil\n")
        #expect(mkdir(dir.file("users.lock"), 0o700) == 0)
        defer { rmdir(dir.file("users.lock")) }
        let logs = CapturedLogs()
        let passdb = try PasswdFilePassdb(path: path, executor: CountingExecutor(), logger: logs.logger())
        let results = ResultLog()
        let chain = Self.chain(passdb, logger: logs.logger(), results: results)
        #expect(await Self.login(chain) == .ok)
        #expect(await eventually { results.all == ["failed"] })
        #expect(readText(path) == "alice@example.org:{PLAIN}pencil\n")
        #expect(logs.all.contains { $0.contains("rehash of alice@example.org from PLAIN to CRYPT failed (the login succeeded)") && $0.contains("write access") })
        #expect(!logs.all.contains { $0.contains("pencil") })
        #expect(await Self.login(chain) == .ok)
    }

    /// The compare-and-swap: a field changed since the login is not overwritten.
    @Test func editorReplacesOnlyTheExpectedField() throws {
        let dir = TempDir()
        let path = dir.write("users", "alice@example.org:{PLAIN}new\n")
        let editor = PasswdFileEditor(path: path)
        let wrote = try editor.replacePasswordField(user: "alice@example.org", with: "{PLAIN}other") { $0 == "{PLAIN}old" }
        #expect(!wrote)
        #expect(readText(path) == "alice@example.org:{PLAIN}new\n")
        #expect(try editor.replacePasswordField(user: "alice@example.org", with: "{PLAIN}other") { $0 == "{PLAIN}new" })
        #expect(readText(path) == "alice@example.org:{PLAIN}other\n")
    }
}

/// Results reported by a `Rehasher`.
final class ResultLog: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func append(_ s: String) { lines.withLock { $0.append(s) } }
}
