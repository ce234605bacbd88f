import AuthCore
import AuthCrypto
import Foundation
import Passdb
import SASL
import Synchronization
import Testing

@testable import PassdbSASLDB

@Suite("sasldb passdb")
struct SASLDBPassdbTests {
    /// A store with alice@example.org (every mechanism secret, default yescrypt), carol (bare, hash only).
    static func makeStore(_ dir: TempDir) throws -> String {
        let path = dir.file("sasldb.db")
        let editor = SASLDBEditor(path: path)
        try editor.add(Fixtures.user("alice@example.org"), password: Secret("wonder land"), policy: .importDefault)
        try editor.add(Fixtures.user("carol"), password: Secret("carol-pw"), policy: Fixtures.fastPolicy)
        return path
    }

    @Test func verifyPlain() async throws {
        let dir = TempDir()
        let db = try Fixtures.passdb(try Self.makeStore(dir))
        #expect(db.name == "sasldb:\(dir.file("sasldb.db"))")
        #expect(db.driver == "sasldb")

        let start = ContinuousClock.now
        #expect(await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("wonder land")) == .ok)
        let elapsed = ContinuousClock.now - start
        print("sasldb verifyPlain with the default yescrypt hash: \(elapsed)")
        #expect(await db.verifyPlain(Fixtures.request("alice@EXAMPLE.ORG"), password: Secret("wonder land")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("wonder-land")) == .passwordMismatch)
        #expect(await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("")) == .passwordMismatch)
        #expect(await db.verifyPlain(Fixtures.request("alice"), password: Secret("wonder land")) == .userUnknown)
        #expect(await db.verifyPlain(Fixtures.request("Alice@example.org"), password: Secret("wonder land")) == .userUnknown)
        #expect(await db.verifyPlain(Fixtures.request("alice@other.org"), password: Secret("wonder land")) == .userUnknown)
        #expect(await db.verifyPlain(Fixtures.request("carol"), password: Secret("carol-pw")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("carol@example.org"), password: Secret("carol-pw")) == .userUnknown)
        #expect(await db.verifyPlain(Fixtures.request("nobody@example.org"), password: Secret("x")) == .userUnknown)
    }

    /// Runs the real verification on the executor, never inline on the caller.
    @Test func hashingRunsOnTheExecutor() async throws {
        let dir = TempDir()
        let path = try Self.makeStore(dir)
        let executor = CountingExecutor()
        let db = try SASLDBPassdb(path: path, executor: executor, logger: Fixtures.logger)
        #expect(await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("wonder land")) == .ok)
        _ = await db.lookupCredentials(Fixtures.request("alice@example.org"), scheme: .cramMD5)
        #expect(executor.count >= 2)
    }

    @Test func everyCredentialKindWorksWithItsMechanism() async throws {
        let dir = TempDir()
        let db = try Fixtures.passdb(try Self.makeStore(dir))
        #expect(db.capabilities.verifyPlain)
        #expect(db.capabilities.credentials == [.cramMD5, .digestMD5, .scramSHA1, .scramSHA256])

        #expect(await MechanismDriver.cramMD5(db, user: "alice@example.org", password: "wonder land"))
        #expect(await !MechanismDriver.cramMD5(db, user: "alice@example.org", password: "wrong"))
        #expect(await MechanismDriver.scram(db, hash: .sha1, user: "alice@example.org", password: "wonder land"))
        #expect(await MechanismDriver.scram(db, hash: .sha256, user: "alice@example.org", password: "wonder land"))
        #expect(await !MechanismDriver.scram(db, hash: .sha256, user: "alice@example.org", password: "wrong"))
        #expect(await MechanismDriver.digestMD5(db, username: "alice", realm: "example.org", password: "wonder land"))
        #expect(await !MechanismDriver.digestMD5(db, username: "alice", realm: "example.org", password: "wrong"))

        // The credentials are the stored ones, of the right kind.
        guard case .found(.cramMD5Context(let ctx)) = await db.lookupCredentials(Fixtures.request("alice@example.org"), scheme: .cramMD5)
        else {
            Issue.record("no CRAM-MD5 context")
            return
        }
        #expect(ctx.count == CRAMMD5.contextLength)
        #expect(ctx.bytes == CRAMMD5.context(password: Secret("wonder land")).bytes)
        guard case .found(.digestMD5HA1(let ha1)) = await db.lookupCredentials(Fixtures.request("alice@example.org"), scheme: .digestMD5)
        else {
            Issue.record("no DIGEST-MD5 HA1")
            return
        }
        #expect(ha1.bytes == DigestMD5.ha1(user: "alice", realm: "example.org", password: Secret("wonder land")).bytes)
        guard case .found(.scram(.sha256, let salt, 4096, _, _)) = await db.lookupCredentials(
            Fixtures.request("alice@example.org"), scheme: .scramSHA256)
        else {
            Issue.record("no SCRAM-SHA-256 credential")
            return
        }
        #expect(salt.count == SCRAM.saltLength)
        guard case .userUnknown = await db.lookupCredentials(Fixtures.request("zed@example.org"), scheme: .cramMD5) else {
            Issue.record("unknown user must be userUnknown")
            return
        }
    }

    @Test func missingKindIsSchemeNotAvailable() async throws {
        let dir = TempDir()
        let db = try Fixtures.passdb(try Self.makeStore(dir))
        guard case .schemeNotAvailable(let why) = await db.lookupCredentials(Fixtures.request("carol"), scheme: .cramMD5) else {
            Issue.record("carol has no CRAM-MD5 secret")
            return
        }
        #expect(why.hasPrefix("no CRAM-MD5 secret stored for carol"))
        guard case .schemeNotAvailable(let why2) = await db.lookupCredentials(Fixtures.request("alice@example.org"), scheme: .plaintext)
        else {
            Issue.record("no cleartext is stored")
            return
        }
        #expect(why2.contains("no cleartext"))
        #expect(await !MechanismDriver.cramMD5(db, user: "carol", password: "carol-pw"))
    }

    @Test func cleartextOptInServesEveryMechanism() async throws {
        let dir = TempDir()
        let path = dir.file("clear.db")
        try SASLDBEditor(path: path).add(
            Fixtures.user("dave@example.org"), password: Secret("dave pw"), policy: SASLDBSecretPolicy(kinds: [.cleartext], hashScheme: .ssha512))
        let db = try Fixtures.passdb(path)
        #expect(db.capabilities.credentials == Set(CredentialScheme.allCases))
        #expect(await db.verifyPlain(Fixtures.request("dave@example.org"), password: Secret("dave pw")) == .ok)
        #expect(await MechanismDriver.cramMD5(db, user: "dave@example.org", password: "dave pw"))
        #expect(await MechanismDriver.scram(db, hash: .sha1, user: "dave@example.org", password: "dave pw"))
        #expect(await MechanismDriver.scram(db, hash: .sha256, user: "dave@example.org", password: "dave pw"))
        // The client's own spelling of the realm works with the cleartext (not with a stored HA1).
        #expect(await MechanismDriver.digestMD5(db, username: "dave", realm: "Example.ORG", password: "dave pw"))
        guard case .found(.plaintext(let p)) = await db.lookupCredentials(Fixtures.request("dave@example.org"), scheme: .plaintext) else {
            Issue.record("cleartext lookup")
            return
        }
        #expect(p.bytes == Array("dave pw".utf8))
    }

    @Test func verifyFallsBackToMechanismSecrets() async throws {
        let dir = TempDir()
        let path = dir.file("fallback.db")
        let editor = SASLDBEditor(path: path)
        for (name, property) in [("s256", SASLDBProperty.scramSHA256), ("s1", .scramSHA1), ("cram", .cramMD5), ("digest", .digestMD5)] {
            try editor.add(Fixtures.user("\(name)@example.org"), password: Secret("pw-\(name)"), policy: SASLDBSecretPolicy(kinds: [property], hashScheme: .ssha512))
        }
        try Fixtures.execute(path, "DELETE FROM sasldb WHERE property = 'saslgate:hash'")
        try Fixtures.execute(path, "INSERT INTO sasldb VALUES ('nothing', 'example.org', 'cmusaslsecretOTP', x'00')")
        let db = try Fixtures.passdb(path)
        for name in ["s256", "s1", "cram", "digest"] {
            #expect(await db.verifyPlain(Fixtures.request("\(name)@example.org"), password: Secret("pw-\(name)")) == .ok, "\(name)")
            #expect(await db.verifyPlain(Fixtures.request("\(name)@example.org"), password: Secret("nope")) == .passwordMismatch, "\(name)")
        }
        guard case .schemeNotAvailable = await db.verifyPlain(Fixtures.request("nothing@example.org"), password: Secret("x")) else {
            Issue.record("a user without any usable secret")
            return
        }
    }

    @Test func malformedStoredValuesAreNotUsable() async throws {
        let dir = TempDir()
        let path = dir.file("broken.db")
        try SASLDBEditor(path: path).add(Fixtures.user("eve@example.org"), password: Secret("pw"), policy: Fixtures.fastAll)
        try Fixtures.execute(path, "UPDATE sasldb SET value = CAST('zz' AS BLOB) WHERE property != 'saslgate:scram-sha-1'")
        let (logger, lines) = Fixtures.capturingLogger()
        let db = try SASLDBPassdb(path: path, executor: InlineExecutor(), logger: logger)
        guard case .schemeNotAvailable = await db.verifyPlain(Fixtures.request("eve@example.org"), password: Secret("pw")) else {
            Issue.record("a broken hash must not verify")
            return
        }
        guard case .schemeNotAvailable = await db.lookupCredentials(Fixtures.request("eve@example.org"), scheme: .cramMD5) else {
            Issue.record("a broken CRAM-MD5 value must not be handed out")
            return
        }
        #expect(await MechanismDriver.scram(db, hash: .sha1, user: "eve@example.org", password: "pw"))
        #expect(lines.all.contains { $0.contains("malformed") || $0.contains("cannot be verified") })
        #expect(!lines.all.contains { $0.contains("zz") && $0.contains("value =") })
    }

    @Test func capabilitiesFollowTheFile() async throws {
        let dir = TempDir()
        let path = dir.file("caps.db")
        let editor = SASLDBEditor(path: path)
        try editor.add(Fixtures.user("a@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        let db = try Fixtures.passdb(path, checkInterval: .milliseconds(20))
        #expect(db.capabilities.credentials.isEmpty)

        try editor.add(Fixtures.user("b@example.org"), password: Secret("pw"), policy: SASLDBSecretPolicy(kinds: [.cramMD5], hashScheme: .ssha512))
        // Picked up by the background check that lookups start (at most once per interval).
        var seen: Set<CredentialScheme> = []
        for _ in 0..<250 {
            seen = db.capabilities.credentials
            if seen == [.cramMD5] { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(seen == [.cramMD5])

        try editor.delete(Fixtures.user("b@example.org"))
        #expect(db.refresh() == [.hash])
        #expect(db.capabilities.credentials.isEmpty)
    }

    /// The auth cache may keep results while the generation stays; any commit (a changed password, a
    /// deleted user) seen by the check gives a new one, and so does a replaced file.
    @Test func cacheGenerationFollowsCommits() async throws {
        let dir = TempDir()
        let path = dir.file("gen.db")
        let editor = SASLDBEditor(path: path)
        try editor.add(Fixtures.user("a@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        let db = try Fixtures.passdb(path, checkInterval: .seconds(3600))
        let first = try #require(db.cacheGeneration)
        #expect(db.cacheGeneration == first)
        db.refresh()
        #expect(db.cacheGeneration == first, "nothing committed: same generation")
        try editor.setPassword(Fixtures.user("a@example.org"), password: Secret("new"), policy: Fixtures.fastPolicy)
        db.refresh()
        let second = try #require(db.cacheGeneration)
        #expect(second != first)
        try editor.delete(Fixtures.user("a@example.org"))
        db.refresh()
        #expect(db.cacheGeneration != second)
    }

    @Test func replacedFileIsReopened() async throws {
        let dir = TempDir()
        let path = dir.file("live.db")
        try SASLDBEditor(path: path).add(Fixtures.user("old@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        let db = try Fixtures.passdb(path)
        #expect(await db.verifyPlain(Fixtures.request("old@example.org"), password: Secret("pw")) == .ok)

        let staging = dir.file("staging.db")
        try SASLDBEditor(path: staging).add(Fixtures.user("new@example.org"), password: Secret("pw2"), policy: Fixtures.fastAll)
        for suffix in ["", "-wal", "-shm"] {
            if FileManager.default.fileExists(atPath: staging + suffix) {
                #expect(rename(staging + suffix, path + suffix) == 0)
            }
        }
        db.refresh()
        #expect(await db.verifyPlain(Fixtures.request("new@example.org"), password: Secret("pw2")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("old@example.org"), password: Secret("pw")) == .userUnknown)
        #expect(db.capabilities.credentials.contains(.cramMD5))
    }

    @Test func readsWhileTheCLIWrites() async throws {
        let dir = TempDir()
        let path = dir.file("busy.db")
        let editor = SASLDBEditor(path: path)
        try editor.add(Fixtures.user("reader@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        let db = try Fixtures.passdb(path)
        // A writer holds the write lock (an open transaction) while the daemon keeps reading.
        let writer = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMilliseconds: 1000)
        try writer.execute("BEGIN IMMEDIATE; DELETE FROM sasldb WHERE authid = 'reader'")
        #expect(await db.verifyPlain(Fixtures.request("reader@example.org"), password: Secret("pw")) == .ok)
        try writer.execute("ROLLBACK")
        #expect(await db.verifyPlain(Fixtures.request("reader@example.org"), password: Secret("pw")) == .ok)
    }

    @Test func permissions() async throws {
        let dir = TempDir()
        let path = try Self.makeStore(dir)
        chmod(path, 0o644)
        let (logger, lines) = Fixtures.capturingLogger()
        _ = try SASLDBPassdb(path: path, executor: InlineExecutor(), logger: logger)
        #expect(lines.all.contains { $0.hasPrefix("warning") && $0.contains("chmod 640") })
        let result = try SASLDBEditor(path: path).add(Fixtures.user("x@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        #expect(result.warnings.count == 1)

        chmod(path, 0o646)
        #expect(throws: SASLDBError.self) { try Fixtures.passdb(path) }
        do {
            try SASLDBEditor(path: path).add(Fixtures.user("y@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
            Issue.record("a world-writable store must be refused")
        } catch {
            guard case .insecurePermissions = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect("\(error)".contains("chmod 640"))
        }
    }

    @Test func nothingSecretIsLogged() async throws {
        let dir = TempDir()
        let path = try Self.makeStore(dir)
        let (logger, lines) = Fixtures.capturingLogger()
        let db = try SASLDBPassdb(path: path, executor: InlineExecutor(), logger: logger)
        _ = await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("wonder land"))
        _ = await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("Guess-Number-42"))
        _ = await db.lookupCredentials(Fixtures.request("carol"), scheme: .scramSHA1)
        for line in lines.all {
            #expect(!line.contains("wonder land") && !line.contains("Guess-Number-42") && !line.contains("$y$"))
        }
        #expect("\(Credential.plaintext(Secret("x")))" == "plaintext(<hidden>)")
    }
}

/// Counts the calls that went through it.
final class CountingExecutor: BlockingExecutor {
    private let n = Atomic<Int>(0)
    var count: Int { n.load(ordering: .relaxed) }
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        n.add(1, ordering: .relaxed)
        return body()
    }
}
