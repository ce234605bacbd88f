import AuthConfig
import AuthCore
import AuthCrypto
import Foundation
import Logging
import Passdb
import Synchronization
import Testing

@testable import PassdbSASLDB

/// App passwords in the sasldb store: the schema migration, the editor's add/list/revoke, what the
/// passdb accepts (services, expiry, never challenge-response), the secret's format, batched last use,
/// and the rehash of the store's main hash.
@Suite struct AppPasswordTests {
    static let alice = Fixtures.user("alice@example.org")
    static let password = Secret(Array("pencil".utf8))

    static func store(_ dir: TempDir) throws -> (String, SASLDBEditor) {
        let path = dir.file("sasldb")
        let editor = SASLDBEditor(path: path)
        try editor.add(alice, password: password, policy: Fixtures.fastAll)
        return (path, editor)
    }

    static func request(service: String = "smtp", ip: String? = "192.0.2.7") -> PassdbRequest {
        PassdbRequest(user: "alice@example.org", mechanism: "PLAIN", service: service, remoteIP: ip)
    }

    static func text(_ s: Secret) -> String { s.withBytes { String(decoding: $0, as: UTF8.self) } }

    /// A version 1 store (before app passwords) opens read-only and serves; the first writer migrates
    /// it; the daemon then sees app passwords without a restart.
    @Test func oldStoreIsMigrated() async throws {
        let dir = TempDir()
        let path = dir.file("sasldb")
        try SASLDBStore.createIfMissing(path: path)
        do {
            let c = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMilliseconds: 1000)
            c.persistWAL()
            _ = try c.text("PRAGMA journal_mode = WAL")
            try c.execute("""
                CREATE TABLE sasldb (authid TEXT NOT NULL CHECK (length(authid) > 0), realm TEXT NOT NULL CHECK (realm NOT GLOB '*[A-Z]*'),
                property TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (authid, realm, property)) WITHOUT ROWID;
                CREATE INDEX sasldb_property ON sasldb (property);
                PRAGMA application_id = \(SASLDBStore.applicationID); PRAGMA user_version = 1;
                """)
            let rows = try SASLDBSecrets.derive(user: Self.alice, password: Self.password, policy: Fixtures.fastPolicy)
            for row in rows { _ = try SASLDBStore.insert(c, user: Self.alice, row: row) }
        }
        let passdb = try Fixtures.passdb(path, checkInterval: .milliseconds(1))
        #expect(await passdb.verifyPlain(Self.request(), password: Self.password) == .ok)
        #expect(await passdb.verifyPlain(Self.request(), password: Secret(Array("wrong".utf8))) == .passwordMismatch)
        let editor = SASLDBEditor(path: path)
        #expect(try editor.appPasswords(of: Self.alice).isEmpty)
        let created = try editor.addAppPassword(Self.alice, name: "phone", services: [], expires: nil)
        let c = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: 1000)
        #expect(try c.integer("PRAGMA user_version") == SASLDBStore.schemaVersion)
        try await Task.sleep(for: .milliseconds(5))
        let verdict = await passdb.verifyPlainVerdict(Self.request(), password: created.password)
        #expect(verdict.result == .ok && verdict.appPassword == "phone")
        #expect(await passdb.verifyPlain(Self.request(), password: Self.password) == .ok)
        #expect(try editor.list().map(\.property).contains("saslgate:hash"))
        await passdb.close()
    }

    @Test func addListRevoke() async throws {
        let dir = TempDir()
        let (path, editor) = try Self.store(dir)
        let created = try editor.addAppPassword(Self.alice, name: "phone", services: ["smtp"], expires: nil, now: 1_800_000_000)
        #expect(created.info.name == "phone")
        _ = try editor.addAppPassword(Self.alice, name: "laptop", services: [], expires: SASLDBAppPasswords.now() + 3600)
        let list = try editor.appPasswords(of: Self.alice)
        #expect(list.map(\.name) == ["laptop", "phone"])
        #expect(list[1].services == ["smtp"] && list[1].created == 1_800_000_000 && list[1].expires == nil && list[1].lastUsed == nil)
        #expect(throws: SASLDBError.appPasswordExists(user: "alice@example.org", name: "phone", path: path)) {
            try editor.addAppPassword(Self.alice, name: "phone", services: [], expires: nil)
        }
        #expect(throws: SASLDBError.userNotFound(user: "bob@example.org", path: path)) {
            try editor.addAppPassword(Fixtures.user("bob@example.org"), name: "phone", services: [], expires: nil)
        }
        let passdb = try Fixtures.passdb(path, checkInterval: .milliseconds(1))
        #expect(await passdb.verifyPlainVerdict(Self.request(), password: created.password).appPassword == "phone")
        try editor.revokeAppPassword(Self.alice, name: "phone")
        #expect(throws: SASLDBError.appPasswordNotFound(user: "alice@example.org", name: "phone", path: path)) {
            try editor.revokeAppPassword(Self.alice, name: "phone")
        }
        try await Task.sleep(for: .milliseconds(5))
        #expect(await passdb.verifyPlain(Self.request(), password: created.password) == .passwordMismatch)
        #expect(try editor.appPasswords(of: Self.alice).map(\.name) == ["laptop"])
        // Deleting the user deletes its app passwords.
        try editor.delete(Self.alice)
        try editor.add(Self.alice, password: Self.password, policy: Fixtures.fastPolicy)
        #expect(try editor.appPasswords(of: Self.alice).isEmpty)
        await passdb.close()
    }

    /// Only the hash is stored, in the scheme of the user's main hash; the secret is nowhere in the file.
    @Test func storesOnlyAHashInTheStoresScheme() throws {
        let dir = TempDir()
        let (path, editor) = try Self.store(dir)
        let created = try editor.addAppPassword(Self.alice, name: "phone", services: [], expires: nil)
        let c = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: 1000)
        let hash = try c.text("SELECT CAST(hash AS TEXT) FROM app_passwords") ?? ""
        #expect(hash.hasPrefix("{SSHA512}"))
        let bytes = Fixtures.storeBytes(path)
        #expect(!Fixtures.contains(bytes, created.password.bytes))
        #expect(!Fixtures.contains(bytes, Array(Self.text(created.password).replacingOccurrences(of: "-", with: "").utf8)))
    }

    @Test func generatedPasswordsAreStrongAndWellFormed() {
        var seen = Set<String>()
        var counts: [Character: Int] = [:]
        for _ in 0..<500 {
            let p = Self.text(SASLDBAppPasswords.generate())
            let groups = p.split(separator: "-", omittingEmptySubsequences: false)
            #expect(groups.count == 4 && groups.allSatisfy { $0.count == 4 })
            #expect(p.allSatisfy { $0 == "-" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) })
            seen.insert(p)
            for ch in p where ch != "-" { counts[ch, default: 0] += 1 }
        }
        #expect(seen.count == 500)
        #expect(seen.allSatisfy { SASLDBAppPasswords.looksGenerated(Secret(Array($0.utf8))) })
        for other in ["pencil", "abcd-efgh-ijkl-mno", "abcd-efgh-ijkl-mnoP", "abcd efgh ijkl mnop", "abcd-efgh-ijkl-mnop-"] {
            #expect(!SASLDBAppPasswords.looksGenerated(Secret(Array(other.utf8))), "\(other)")
        }
        #expect(counts.count == 36, "every symbol of the alphabet appears")
        // 16 symbols of 36: ≥ 80 bits.
        #expect(Double(SASLDBAppPasswords.groups * SASLDBAppPasswords.groupLength) * log2(36.0) >= 80)
    }

    @Test func namesAndServicesAreChecked() throws {
        #expect(throws: SASLDBError.self) { try SASLDBAppPasswords.validateName("") }
        #expect(throws: SASLDBError.self) { try SASLDBAppPasswords.validateName("a b") }
        #expect(throws: SASLDBError.self) { try SASLDBAppPasswords.validateName("-x") }
        #expect(throws: SASLDBError.self) { try SASLDBAppPasswords.validateName(String(repeating: "a", count: 65)) }
        try SASLDBAppPasswords.validateName("phone-2.work_x")
        #expect(try SASLDBAppPasswords.parseServices("SMTP, imap,smtp") == ["imap", "smtp"])
        #expect(try SASLDBAppPasswords.parseServices("").isEmpty)
        #expect(throws: SASLDBError.self) { try SASLDBAppPasswords.parseServices("smtp;rm") }
    }

    /// `service=` must be in the list; an expired one fails; either way like a wrong password.
    @Test func servicesAndExpiry() async throws {
        let dir = TempDir()
        let (path, editor) = try Self.store(dir)
        let smtp = try editor.addAppPassword(Self.alice, name: "mail", services: ["smtp", "submission"], expires: nil)
        let past = SASLDBAppPasswords.now() - 7200
        let old = try editor.addAppPassword(Self.alice, name: "old", services: [], expires: past + 3600, now: past)
        let passdb = try Fixtures.passdb(path)
        #expect(await passdb.verifyPlainVerdict(Self.request(service: "smtp"), password: smtp.password).appPassword == "mail")
        #expect(await passdb.verifyPlainVerdict(Self.request(service: "SUBMISSION"), password: smtp.password).result == .ok)
        #expect(await passdb.verifyPlain(Self.request(service: "imap"), password: smtp.password) == .passwordMismatch)
        #expect(await passdb.verifyPlain(Self.request(), password: old.password) == .passwordMismatch)
        await passdb.close()
    }

    /// Challenge-response mechanisms get the main password's secrets only: an app password never
    /// unlocks CRAM-MD5, DIGEST-MD5 or SCRAM.
    @Test func neverUnlocksChallengeResponse() async throws {
        let dir = TempDir()
        let (path, editor) = try Self.store(dir)
        let created = try editor.addAppPassword(Self.alice, name: "phone", services: [], expires: nil)
        let passdb = try Fixtures.passdb(path)
        guard case .found(.cramMD5Context(let stored)) = await passdb.lookupCredentials(Self.request(), scheme: .cramMD5) else {
            Issue.record("no CRAM-MD5 secret")
            return
        }
        #expect(CRAMMD5Probe.context(Self.password).withBytes { stored.constantTimeEquals($0) })
        #expect(!CRAMMD5Probe.context(created.password).withBytes { stored.constantTimeEquals($0) })
        await passdb.close()
    }

    /// Uses are written in batches by the timer and at close, never per login.
    @Test func lastUseIsFlushedInBatches() async throws {
        let dir = TempDir()
        let (path, editor) = try Self.store(dir)
        let created = try editor.addAppPassword(Self.alice, name: "phone", services: [], expires: nil)
        let passdb = try SASLDBPassdb(
            path: path, executor: InlineExecutor(), logger: Fixtures.logger, usageInterval: .seconds(3))
        for _ in 0..<5 { #expect(await passdb.verifyPlain(Self.request(ip: "198.51.100.9"), password: created.password) == .ok) }
        #expect(passdb.usage.pendingCount == 1)
        #expect(try editor.appPasswords(of: Self.alice).first?.lastUsed == nil, "nothing written per login")
        var flushed = false
        for _ in 0..<300 where !flushed {
            try await Task.sleep(for: .milliseconds(50))
            flushed = try editor.appPasswords(of: Self.alice).first?.lastUsed != nil
        }
        #expect(flushed)
        #expect(try editor.appPasswords(of: Self.alice).first?.lastIP == "198.51.100.9")

        let slow = try SASLDBPassdb(path: path, executor: InlineExecutor(), logger: Fixtures.logger, usageInterval: .seconds(3600))
        #expect(await slow.verifyPlain(Self.request(ip: "203.0.113.5"), password: created.password) == .ok)
        await slow.close()
        #expect(try editor.appPasswords(of: Self.alice).first?.lastIP == "203.0.113.5")
        await passdb.close()
    }

    /// A legacy main hash in the store is replaced by yescrypt after a login; the other secrets stay.
    @Test func rehashesTheStoresHash() async throws {
        let dir = TempDir()
        let path = dir.file("sasldb")
        let editor = SASLDBEditor(path: path)
        try editor.add(Self.alice, password: Self.password, policy: SASLDBSecretPolicy(kinds: [.hash, .cramMD5], hashScheme: .ssha512))
        do {
            let (c, _) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: 1000)
            try c.execute("UPDATE sasldb SET value = CAST('{SSHA}wQlfDRC2U2VxQ+eMKr7SFL0BmVgBAgMEBQYHCA==' AS BLOB) WHERE property = 'saslgate:hash'")
        }
        let passdb = try Fixtures.passdb(path, checkInterval: .milliseconds(1))
        var chain = PassdbChain([passdb])
        let results = Mutex<[String]>([])
        let (schemes, _) = RehashSchemes.parse("SSHA -> CRYPT")
        chain.rehasher = Rehasher(policy: RehashPolicy(schemes!)!, logger: Fixtures.logger) { r in results.withLock { $0.append(r) } }
        #expect(await chain.verify(Self.request(), password: Self.password).result == .ok)
        for _ in 0..<500 where results.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(results.withLock { $0 } == ["ok"])
        let c = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: 1000)
        #expect(try c.text("SELECT CAST(value AS TEXT) FROM sasldb WHERE property = 'saslgate:hash'")?.hasPrefix("{CRYPT}$y$") == true)
        #expect(try editor.properties(of: Self.alice) == [.hash, .cramMD5])
        #expect(await chain.verify(Self.request(), password: Self.password).result == .ok)
        try await Task.sleep(for: .milliseconds(50))
        #expect(results.withLock { $0 } == ["ok"])
        await passdb.close()
    }
}

/// The CRAM-MD5 context of a password, to compare with what the store hands out.
enum CRAMMD5Probe {
    static func context(_ password: Secret) -> Secret { CRAMMD5.context(password: password) }
}
