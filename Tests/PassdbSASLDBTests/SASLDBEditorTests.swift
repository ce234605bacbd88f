import AuthCore
import Foundation
import Passdb
import Testing

@testable import PassdbSASLDB

@Suite("sasldb store editor")
struct SASLDBEditorTests {
    @Test func addListPasswdDelete() throws {
        let dir = TempDir()
        let path = dir.file("sasldb.db")
        let editor = SASLDBEditor(path: path)
        let alice = Fixtures.user("alice@example.org")

        let added = try editor.add(alice, password: Secret("secret-1"), policy: Fixtures.fastAll)
        #expect(added.properties == [.hash, .scramSHA1, .scramSHA256, .cramMD5, .digestMD5])
        try editor.add(Fixtures.user("carol"), password: Secret("secret-2"), policy: Fixtures.fastPolicy)

        let lines = try editor.list().map(\.description)
        #expect(
            lines == [
                "carol: saslgate:hash",
                "alice@example.org: saslgate:cram-md5",
                "alice@example.org: saslgate:digest-md5",
                "alice@example.org: saslgate:hash",
                "alice@example.org: saslgate:scram-sha-1",
                "alice@example.org: saslgate:scram-sha-256",
            ])
        #expect(try editor.users() == [Fixtures.user("carol"), alice])

        // passwd without kinds keeps the kinds the user has.
        let changed = try editor.setPassword(alice, password: Secret("secret-3"))
        #expect(changed.properties == [.hash, .scramSHA1, .scramSHA256, .cramMD5, .digestMD5])
        #expect(!changed.droppedCleartext)
        // passwd with kinds replaces them.
        try editor.setPassword(alice, password: Secret("secret-4"), policy: SASLDBSecretPolicy(kinds: [.cramMD5], hashScheme: .ssha512))
        #expect(try editor.properties(of: alice) == [.hash, .cramMD5])

        let deleted = try editor.delete(alice)
        #expect(Set(deleted.properties) == [.hash, .cramMD5])
        #expect(try editor.list().map(\.description) == ["carol: saslgate:hash"])
        #expect(try !editor.contains(alice))
    }

    @Test func strictness() throws {
        let dir = TempDir()
        let path = dir.file("store")
        let editor = SASLDBEditor(path: path)
        let alice = Fixtures.user("alice@example.org")

        // Missing store: passwd and del are refusals, list says how to create it.
        #expect(throws: SASLDBError.userNotFound(user: "alice@example.org", path: path)) {
            try editor.setPassword(alice, password: Secret("x"))
        }
        #expect(throws: SASLDBError.userNotFound(user: "alice@example.org", path: path)) { try editor.delete(alice) }
        #expect(throws: SASLDBError.storeMissing(path: path)) { try editor.list() }
        #expect(!FileManager.default.fileExists(atPath: path), "passwd/del must not create the store")

        try editor.add(alice, password: Secret("pw"), policy: Fixtures.fastPolicy)
        do {
            try editor.add(alice, password: Secret("other"), policy: Fixtures.fastPolicy)
            Issue.record("a second add must be refused")
        } catch {
            #expect(error == .userExists(user: "alice@example.org", path: path))
            #expect(error.isRefusal)
            #expect("\(error)".contains("saslgate user passwd"))
        }
        let bob = Fixtures.user("bob@example.org")
        #expect(throws: SASLDBError.userNotFound(user: "bob@example.org", path: path)) { try editor.setPassword(bob, password: Secret("x")) }
        #expect(throws: SASLDBError.userNotFound(user: "bob@example.org", path: path)) { try editor.delete(bob) }

        // Passwords that cannot be stored change nothing.
        for bad in ["", "line\nbreak", "nul\0byte"] {
            #expect(throws: SASLDBError.self) { try editor.add(bob, password: Secret(bad), policy: Fixtures.fastPolicy) }
            #expect(throws: SASLDBError.self) { try editor.setPassword(alice, password: Secret(bad), policy: Fixtures.fastPolicy) }
        }
        #expect(try editor.users() == [alice])
        // A hash scheme that is not a hash is refused.
        #expect(throws: SASLDBError.unsupportedHashScheme(.plain)) {
            try editor.add(bob, password: Secret("pw"), policy: SASLDBSecretPolicy(hashScheme: .plain))
        }
        #expect(throws: SASLDBError.self) {
            try editor.add(bob, password: Secret("pw"), policy: SASLDBSecretPolicy(hashScheme: .ssha512, scramIterations: 10))
        }
        #expect(try editor.users() == [alice])
    }

    @Test func realmsAreCaseInsensitiveAndSeparate() throws {
        let dir = TempDir()
        let editor = SASLDBEditor(path: dir.file("store"))
        try editor.add(Fixtures.user("bob", "Example.ORG"), password: Secret("pw1"), policy: Fixtures.fastPolicy)
        #expect(try editor.contains(Fixtures.user("bob@example.org")))
        #expect(try editor.contains(Fixtures.user("bob@EXAMPLE.org")))
        #expect(throws: SASLDBError.self) {
            try editor.add(Fixtures.user("bob@EXAMPLE.org"), password: Secret("pw2"), policy: Fixtures.fastPolicy)
        }
        // Same name, other realm or no realm: other users. The authentication id keeps its case.
        try editor.add(Fixtures.user("bob@other.org"), password: Secret("pw3"), policy: Fixtures.fastPolicy)
        try editor.add(Fixtures.user("bob"), password: Secret("pw4"), policy: Fixtures.fastPolicy)
        try editor.add(Fixtures.user("Bob@example.org"), password: Secret("pw5"), policy: Fixtures.fastPolicy)
        #expect(
            try editor.users().map(\.description) == ["bob", "Bob@example.org", "bob@example.org", "bob@other.org"])
        try editor.delete(Fixtures.user("bob@EXAMPLE.ORG"))
        #expect(try editor.users().map(\.description) == ["bob", "Bob@example.org", "bob@other.org"])
    }

    @Test func userNames() throws {
        #expect(try SASLDBUser(name: "alice@Example.Org") == SASLDBUser(authid: "alice", realm: "example.org"))
        #expect(try SASLDBUser(name: "a@b@example.org").authid == "a@b")
        #expect(try SASLDBUser(name: "alice", realm: "example.org").description == "alice@example.org")
        #expect(try SASLDBUser(name: "alice").realm == "")
        #expect(try SASLDBUser(request: Fixtures.request("alice@EXAMPLE.org")) == SASLDBUser(authid: "alice", realm: "example.org"))
        for (name, realm) in [("", "example.org"), ("a\nb", "x"), ("a@b", ""), ("a", "ex ample"), ("a", "b@c"), (String(repeating: "x", count: 256), "")] {
            #expect(throws: SASLDBError.self, "\(name.debugDescription)@\(realm)") { try SASLDBUser(authid: name, realm: realm) }
        }
    }

    @Test func mechanismLists() throws {
        #expect(try SASLDBProperty.parse(mechanisms: "scram-sha-256,CRAM-MD5") == [.hash, .scramSHA256, .cramMD5])
        #expect(try SASLDBProperty.parse(mechanisms: "plain login") == [.hash])
        #expect(try SASLDBProperty.parse(mechanisms: "all") == SASLDBProperty.allMechanismSecrets)
        #expect(try SASLDBProperty.parse(mechanisms: "digest-md5,scram-sha-1").ordered == [.hash, .scramSHA1, .digestMD5])
        for bad in ["", "cleartext", "ntlm", "scram-sha-512"] {
            #expect(throws: SASLDBError.self, "\(bad)") { try SASLDBProperty.parse(mechanisms: bad) }
        }
        #expect(!SASLDBProperty.allMechanismSecrets.contains(.cleartext))
        #expect(SASLDBSecretPolicy.importDefault.kinds == SASLDBProperty.allMechanismSecrets)
        #expect(SASLDBSecretPolicy(kinds: [.cramMD5]).kinds.contains(.hash), "the hash is always stored")
    }

    /// The property names are the store's format: they must not move. Each mechanism secret is named
    /// after its mechanism, and maps back to it.
    @Test func propertiesAreNamedAfterTheirMechanisms() {
        #expect(SASLDBProperty.allCases.map(\.rawValue) == [
            "userPassword", "saslgate:hash", "saslgate:scram-sha-1", "saslgate:scram-sha-256", "saslgate:cram-md5",
            "saslgate:digest-md5",
        ])
        for scheme in CredentialScheme.allCases {
            let property = SASLDBProperty(storing: scheme)
            #expect((property == nil) == (scheme == .plaintext), "\(scheme)")
            #expect(property?.storedCredential == property.map { _ in scheme })
            #expect(property?.credentialSchemes == property.map { _ in [scheme] })
        }
        #expect(SASLDBProperty.cleartext.credentialSchemes == Set(CredentialScheme.allCases))
        #expect(SASLDBProperty.hash.credentialSchemes.isEmpty && SASLDBProperty.hash.storedCredential == nil)
        #expect(SASLDBProperty.mechanismNames == ["plain", "login", "scram-sha-1", "scram-sha-256", "cram-md5", "digest-md5", "all"])
    }

    @Test func defaultHashIsYescryptAndValuesHaveDovecotFormats() throws {
        let dir = TempDir()
        let path = dir.file("store")
        let editor = SASLDBEditor(path: path)
        let alice = Fixtures.user("alice@example.org")
        try editor.add(alice, password: Secret("pencil"), policy: SASLDBSecretPolicy(kinds: SASLDBProperty.allMechanismSecrets))
        let c = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: 1000)
        var values: [SASLDBProperty: String] = [:]
        for (p, v) in try SASLDBStore.rows(c, user: alice) { values[p!] = v.withBytes { String(decoding: $0, as: UTF8.self) } }
        #expect(values[.hash]?.hasPrefix("{CRYPT}$y$") == true)
        #expect(try StoredPassword(field: values[.hash]!).verify(Secret("pencil"), user: "alice@example.org") == .match)
        // The mechanism secrets parse as Dovecot's own schemes and verify the password.
        for (property, scheme) in [
            (SASLDBProperty.scramSHA1, "SCRAM-SHA-1"), (.scramSHA256, "SCRAM-SHA-256"), (.cramMD5, "CRAM-MD5"),
        ] {
            let stored = try StoredPassword(field: "{\(scheme)}" + values[property]!)
            #expect(stored.verify(Secret("pencil"), user: "alice@example.org") == .match, "\(scheme)")
        }
        let digest = try StoredPassword(field: "{DIGEST-MD5}" + values[.digestMD5]!)
        #expect(digest.verify(Secret("pencil"), user: "alice@example.org") == .match)
        #expect(values[.scramSHA256]!.hasPrefix("4096,"))
        #expect(values[.cramMD5]!.count == 64 && values[.digestMD5]!.count == 32)
    }

    @Test func passwdDropsCleartextUnlessAskedAndScrubsIt() throws {
        let dir = TempDir()
        let path = dir.file("store")
        let editor = SASLDBEditor(path: path)
        let alice = Fixtures.user("alice@example.org")
        let password = "Cleartext-Marker-7f3a9"
        try editor.add(alice, password: Secret(password), policy: SASLDBSecretPolicy(kinds: [.cleartext, .cramMD5], hashScheme: .ssha512))
        #expect(Fixtures.contains(Fixtures.storeBytes(path), Array(password.utf8)), "opted-in cleartext is stored")
        let result = try editor.setPassword(alice, password: Secret("Another-Secret-1"))
        #expect(result.droppedCleartext)
        #expect(result.properties == [.hash, .cramMD5])
        let bytes = Fixtures.storeBytes(path)
        #expect(!Fixtures.contains(bytes, Array(password.utf8)), "the old cleartext is gone from the file and its WAL")
        #expect(!Fixtures.contains(bytes, Array("Another-Secret-1".utf8)))
        // Asked for explicitly, it stays.
        let kept = try editor.setPassword(alice, password: Secret("Third"), policy: SASLDBSecretPolicy(kinds: [.cleartext], hashScheme: .ssha512))
        #expect(kept.properties == [.cleartext, .hash])
    }

    @Test func refusesFilesThatAreNotStores() throws {
        let dir = TempDir()
        let text = dir.file("text")
        try "hello, I am not a database\n".write(toFile: text, atomically: false, encoding: .utf8)
        chmod(text, 0o640)
        #expect(throws: SASLDBError.self) { try SASLDBEditor(path: text).add(Fixtures.user("a"), password: Secret("p"), policy: Fixtures.fastPolicy) }
        #expect(throws: SASLDBError.self) { try Fixtures.passdb(text) }

        let foreign = dir.file("foreign.db")
        _ = FileManager.default.createFile(atPath: foreign, contents: nil, attributes: [.posixPermissions: 0o640])
        try Fixtures.execute(foreign, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        do {
            try SASLDBEditor(path: foreign).add(Fixtures.user("a"), password: Secret("p"), policy: Fixtures.fastPolicy)
            Issue.record("a foreign SQLite file must be refused")
        } catch {
            guard case .notAStore(_, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(reason.contains("another application"))
        }
        #expect(throws: SASLDBError.self) { try Fixtures.passdb(foreign) }

        // An empty file is not served by the daemon (nothing was ever added).
        let empty = dir.file("empty")
        _ = FileManager.default.createFile(atPath: empty, contents: nil, attributes: [.posixPermissions: 0o640])
        #expect(throws: SASLDBError.self) { try Fixtures.passdb(empty) }
        #expect(throws: SASLDBError.storeMissing(path: dir.file("missing"))) { try Fixtures.passdb(dir.file("missing")) }
    }

    @Test func missingDirectoryNamesTheFix() throws {
        let dir = TempDir()
        let path = dir.file("no/such/dir/store")
        do {
            try SASLDBEditor(path: path).add(Fixtures.user("a"), password: Secret("p"), policy: Fixtures.fastPolicy)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("does not exist; create it first"))
        }
    }
}
