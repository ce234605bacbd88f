import AuthCore
import CBerkeleyDB
import Foundation
import Passdb
import SASL
import Testing

@testable import PassdbSASLDB

/// Writes a Berkeley DB hash file with the sasldb2 key layout, for records saslpasswd2 cannot make
/// (other properties, invalid UTF-8, many users quickly). The "real" fixtures come from saslpasswd2.
enum BerkeleyDBWriter {
    static func write(_ path: String, _ records: [(key: [UInt8], value: [UInt8])]) throws {
        var dbp: UnsafeMutablePointer<DB>?
        guard db_create(&dbp, nil, 0) == 0, let db = dbp else { throw TestFailure("db_create failed") }
        var rc = db.pointee.open(db, nil, path, nil, DB_HASH, UInt32(DB_CREATE), 0o640)
        guard rc == 0 else {
            _ = db.pointee.close(db, 0)
            throw TestFailure("db open failed: \(String(cString: db_strerror(rc)))")
        }
        defer { _ = db.pointee.close(db, 0) }
        for (k, v) in records {
            var key = k
            var value = v
            rc = key.withUnsafeMutableBytes { kb in
                value.withUnsafeMutableBytes { vb in
                    var kd = DBT()
                    var vd = DBT()
                    kd.data = kb.baseAddress
                    kd.size = UInt32(kb.count)
                    vd.data = vb.baseAddress
                    vd.size = UInt32(vb.count)
                    return db.pointee.put(db, nil, &kd, &vd, 0)
                }
            }
            guard rc == 0 else { throw TestFailure("db put failed: \(String(cString: db_strerror(rc)))") }
        }
    }

    static func key(_ authid: String, _ realm: String, _ property: String) -> [UInt8] {
        Array(authid.utf8) + [0] + Array(realm.utf8) + [0] + Array(property.utf8)
    }
}

@Suite("Cyrus sasldb2 import")
struct SASLDB2ImportTests {
    /// A sasldb2 made by the real saslpasswd2; nil (test skipped) without sasl2-bin.
    static func realFixture(_ dir: TempDir) throws -> String? {
        let file = dir.file("sasldb2")
        for (user, realm, password) in [
            ("alice", "example.org", "pass"), ("bob", "Other.Org", "pässwörd"), ("carol", "example.org", "c:a r{o}l\\x"),
        ] {
            guard try Fixtures.saslpasswd2(file, user: user, realm: realm, password: password) != nil else { return nil }
        }
        return file
    }

    @Test func importsARealSaslpasswd2File() async throws {
        let dir = TempDir()
        guard let source = try Self.realFixture(dir) else {
            print("skipped: \(Fixtures.saslpasswd2Missing)")
            return
        }
        // The fixture is what saslpasswd2 says it is.
        if let list = Fixtures.which("sasldblistusers2") {
            let (status, out, _) = try Fixtures.run(list, ["-f", source])
            #expect(status == 0)
            #expect(out.contains("bob@Other.Org: userPassword"))
        }
        let sourceBefore = FileManager.default.contents(atPath: source)
        let store = dir.file("store.db")
        let start = ContinuousClock.now
        let report = try SASLDB2Importer(sourcePath: source).run(into: store)
        print("imported 3 users from a saslpasswd2 file with every secret in \(ContinuousClock.now - start)")
        #expect(report.skipped.isEmpty, "\(report.skipped)")
        #expect(report.imported.map(\.user.description).sorted() == ["alice@example.org", "bob@other.org", "carol@example.org"])
        #expect(report.imported.allSatisfy { $0.properties == [.hash, .scramSHA1, .scramSHA256, .cramMD5, .digestMD5] })
        #expect(FileManager.default.contents(atPath: source) == sourceBefore, "the source is never changed")

        let bytes = Fixtures.storeBytes(store)
        for password in ["pässwörd", "c:a r{o}l\\x"] {
            #expect(!Fixtures.contains(bytes, Array(password.utf8)), "no cleartext in the store")
        }
        let db = try Fixtures.passdb(store)
        #expect(await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("pass")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("bob@other.org"), password: Secret("pässwörd")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("bob@OTHER.ORG"), password: Secret("pässwörd")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("carol@example.org"), password: Secret("c:a r{o}l\\x")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("alice@example.org"), password: Secret("Pass")) == .passwordMismatch)
        #expect(await MechanismDriver.cramMD5(db, user: "bob@other.org", password: "pässwörd"))
        #expect(await MechanismDriver.scram(db, hash: .sha256, user: "alice@example.org", password: "pass"))
        #expect(await MechanismDriver.scram(db, hash: .sha1, user: "carol@example.org", password: "c:a r{o}l\\x"))
        #expect(await MechanismDriver.digestMD5(db, username: "alice", realm: "example.org", password: "pass"))

        // Again: nothing new, every user already there, and a refusal-worthy empty import.
        let again = try SASLDB2Importer(sourcePath: source).run(into: store)
        #expect(again.imported.isEmpty)
        #expect(again.skipped.count == 3 && again.skipped.allSatisfy { $0.reason == .alreadyInStore })
    }

    @Test func cleartextAndMechanismChoice() async throws {
        let dir = TempDir()
        guard let source = try Self.realFixture(dir) else {
            print("skipped: \(Fixtures.saslpasswd2Missing)")
            return
        }
        let store = dir.file("store.db")
        let policy = SASLDBSecretPolicy(kinds: [.cramMD5, .cleartext], hashScheme: .ssha512)
        let report = try SASLDB2Importer(sourcePath: source, policy: policy).run(into: store)
        #expect(report.imported.first?.properties == [.cleartext, .hash, .cramMD5])
        #expect(Fixtures.contains(Fixtures.storeBytes(store), Array("pässwörd".utf8)), "--cleartext keeps userPassword")
        let db = try Fixtures.passdb(store)
        #expect(await MechanismDriver.digestMD5(db, username: "bob", realm: "Other.Org", password: "pässwörd"))
    }

    @Test func skipsWithReasons() throws {
        let dir = TempDir()
        let source = dir.file("sasldb2")
        try BerkeleyDBWriter.write(
            source,
            [
                (BerkeleyDBWriter.key("alice", "example.org", "userPassword"), Array("alice-pw".utf8)),
                (BerkeleyDBWriter.key("alice", "example.org", "cmusaslsecretOTP"), [1, 2, 3]),
                (BerkeleyDBWriter.key("otp-only", "example.org", "cmusaslsecretOTP"), [4, 5, 6]),
                (BerkeleyDBWriter.key("dup", "Example.Org", "userPassword"), Array("one".utf8)),
                (BerkeleyDBWriter.key("dup", "example.org", "userPassword"), Array("two".utf8)),
                (Array("bad\u{FF}".utf8) + [0xFF, 0] + Array("example.org".utf8) + [0] + Array("userPassword".utf8), Array("pw".utf8)),
                (BerkeleyDBWriter.key("badpw", "example.org", "userPassword"), [0x66, 0xC3, 0x28]),
                (BerkeleyDBWriter.key("emptypw", "example.org", "userPassword"), []),
                (BerkeleyDBWriter.key("ctl\u{1}", "example.org", "userPassword"), Array("pw".utf8)),
                (BerkeleyDBWriter.key("bare", "", "userPassword"), Array("bare-pw".utf8)),
                (Array("no-separators".utf8), Array("x".utf8)),
                (BerkeleyDBWriter.key("existing", "example.org", "userPassword"), Array("new".utf8)),
            ])
        let store = dir.file("store.db")
        try SASLDBEditor(path: store).add(Fixtures.user("existing@example.org"), password: Secret("old"), policy: Fixtures.fastPolicy)

        let report = try SASLDB2Importer(sourcePath: source, policy: Fixtures.fastAll).run(into: store)
        #expect(Set(report.imported.map(\.user.description)) == ["alice@example.org", "dup@example.org", "bare"])
        func reason(_ user: String, _ property: String? = nil) -> SASLDB2Skip.Reason? {
            report.skipped.first { $0.user == user && $0.property == property }?.reason
        }
        #expect(reason("alice@example.org", "cmusaslsecretOTP") == .unknownProperty)
        #expect(reason("otp-only@example.org", "cmusaslsecretOTP") == .unknownProperty)
        #expect(reason("otp-only@example.org") == .noUserPassword)
        #expect(reason("?", nil) == .malformedKey)
        #expect(reason("badpw@example.org") == .invalidUTF8(field: "password"))
        #expect(reason("existing@example.org") == .alreadyInStore)
        #expect(report.skipped.contains { $0.reason == .invalidUTF8(field: "user name") })
        #expect(report.skipped.contains { if case .duplicateUser = $0.reason { true } else { false } })
        #expect(report.skipped.contains { if case .unusablePassword = $0.reason { $0.user == "emptypw@example.org" } else { false } })
        #expect(report.skipped.contains { if case .invalidUserName = $0.reason { true } else { false } })
        #expect(report.skipped.count == 10, "\(report.skipped)")
        // Skip lines never show a password.
        for skip in report.skipped {
            #expect(!"\(skip)".contains("alice-pw") && !"\(skip)".contains("new"))
        }
        // The existing user is untouched.
        let editor = SASLDBEditor(path: store)
        #expect(try editor.properties(of: Fixtures.user("existing@example.org")) == [.hash])
    }

    /// A failure in the middle of the write leaves the store exactly as it was.
    @Test func failureMidImportWritesNothing() throws {
        let dir = TempDir()
        let source = dir.file("sasldb2")
        try BerkeleyDBWriter.write(
            source,
            (0..<40).map { (BerkeleyDBWriter.key("user\($0)", "example.org", "userPassword"), Array("pw\($0)".utf8)) })
        let store = dir.file("store.db")
        let editor = SASLDBEditor(path: store)
        try editor.add(Fixtures.user("before@example.org"), password: Secret("pw"), policy: Fixtures.fastAll)
        let before = try editor.list()
        let bytesBefore = try editor.users().count

        // A real SQLite failure on the 21st user's first row (a trigger that aborts).
        try Fixtures.execute(
            store,
            """
            CREATE TRIGGER fail_mid_import BEFORE INSERT ON sasldb WHEN NEW.authid = 'user20'
            BEGIN SELECT RAISE(ABORT, 'forced failure for the test'); END
            """)
        #expect(throws: SASLDBError.self) { try SASLDB2Importer(sourcePath: source, policy: Fixtures.fastAll).run(into: store) }
        #expect(try editor.list() == before)
        #expect(try editor.users().count == bytesBefore)
        #expect(try Fixtures.integrityCheck(store) == "ok")

        // A failure after every row is written, just before COMMIT.
        try Fixtures.execute(store, "DROP TRIGGER fail_mid_import")
        let importer = SASLDB2Importer(sourcePath: source, policy: Fixtures.fastAll)
        #expect(throws: SASLDBError.self) {
            try importer.run(into: store, dryRun: false, beforeCommit: { () throws(SASLDBError) in throw .derivationFailed("forced") })
        }
        #expect(try editor.list() == before)

        // Nothing in the way: all 40 arrive.
        let report = try importer.run(into: store)
        #expect(report.imported.count == 40)
        #expect(try editor.users().count == 41)
    }

    /// An importer killed inside its transaction: the store keeps exactly its earlier users.
    @Test func killedImporter() throws {
        let dir = TempDir()
        let source = dir.file("sasldb2")
        try BerkeleyDBWriter.write(
            source, (0..<25).map { (BerkeleyDBWriter.key("u\($0)", "example.org", "userPassword"), Array("pw\($0)".utf8)) })
        let store = dir.file("store.db")
        let editor = SASLDBEditor(path: store)
        try editor.add(Fixtures.user("keep@example.org"), password: Secret("pw"), policy: Fixtures.fastAll)
        let before = try editor.list()
        let child = try ChildProcess.spawn(
            role: "victim-import", environment: [ChildProcess.storeVariable: store, ChildProcess.sourceVariable: source])
        #expect(child.readLine() == "READY")
        child.kill9()
        #expect(try Fixtures.integrityCheck(store) == "ok")
        #expect(try editor.list() == before)
        #expect(try SASLDB2Importer(sourcePath: source, policy: Fixtures.fastAll).run(into: store).imported.count == 25)
    }

    @Test func dryRunWritesNothing() throws {
        let dir = TempDir()
        let source = dir.file("sasldb2")
        try BerkeleyDBWriter.write(source, [(BerkeleyDBWriter.key("a", "example.org", "userPassword"), Array("pw".utf8))])
        let store = dir.file("store.db")
        let report = try SASLDB2Importer(sourcePath: source).run(into: store, dryRun: true)
        #expect(report.dryRun)
        #expect(report.imported.map(\.user.description) == ["a@example.org"])
        #expect(!FileManager.default.fileExists(atPath: store))
    }

    @Test func unreadableSources() throws {
        let dir = TempDir()
        let importer = { (path: String) in SASLDB2Importer(sourcePath: path) }
        #expect(throws: SASLDBError.self) { try importer(dir.file("missing")).run(into: dir.file("s")) }
        let text = dir.file("text")
        try "not a database".write(toFile: text, atomically: false, encoding: .utf8)
        do {
            _ = try importer(text).run(into: dir.file("s"))
            Issue.record("a text file is not a sasldb2")
        } catch {
            #expect("\(error)".contains("Berkeley DB hash file"))
        }
        let store = dir.file("store.db")
        try SASLDBEditor(path: store).add(Fixtures.user("a"), password: Secret("p"), policy: Fixtures.fastPolicy)
        do {
            _ = try importer(store).run(into: dir.file("s"))
            Issue.record("a saslgate store is not a sasldb2")
        } catch {
            #expect("\(error)".contains("SQLite"))
        }
        // A Berkeley DB btree (not what saslpasswd2 writes) is refused by DB_HASH.
        let btree = dir.file("btree")
        var dbp: UnsafeMutablePointer<DB>?
        #expect(db_create(&dbp, nil, 0) == 0)
        if let db = dbp {
            #expect(db.pointee.open(db, nil, btree, nil, DB_BTREE, UInt32(DB_CREATE), 0o600) == 0)
            _ = db.pointee.close(db, 0)
            #expect(throws: SASLDBError.self) { try importer(btree).run(into: dir.file("s")) }
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("s")))
    }

    /// A sasldb2 store given to the daemon as `sasldb:PATH` is refused with the import hint.
    @Test func sasldb2IsNotAStore() throws {
        let dir = TempDir()
        let source = dir.file("sasldb2")
        try BerkeleyDBWriter.write(source, [(BerkeleyDBWriter.key("a", "example.org", "userPassword"), Array("pw".utf8))])
        do {
            _ = try Fixtures.passdb(source)
            Issue.record("expected a refusal")
        } catch {
            #expect("\(error)".contains("saslgate import sasldb2"))
        }
    }

    /// Figures: importing many users with the default secrets (yescrypt + SCRAM x2 + CRAM + DIGEST).
    @Test func importFigures() throws {
        let dir = TempDir()
        let source = dir.file("sasldb2")
        let n = 100
        try BerkeleyDBWriter.write(
            source, (0..<n).map { (BerkeleyDBWriter.key("user\($0)", "example.org", "userPassword"), Array("password-\($0)".utf8)) })
        let store = dir.file("store.db")
        let start = ContinuousClock.now
        let report = try SASLDB2Importer(sourcePath: source).run(into: store)
        let elapsed = ContinuousClock.now - start
        #expect(report.imported.count == n)
        print("imported \(n) users with the default secrets in \(elapsed) (\(activeProcessorCount()) cores)")
    }
}
