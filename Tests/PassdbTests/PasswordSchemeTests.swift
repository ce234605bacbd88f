import AuthCore
import Testing

@testable import Passdb

@Suite("Password schemes")
struct PasswordSchemeTests {
    // MARK: known hashes

    @Test("known Dovecot/libxcrypt hashes verify the right password only", arguments: Fixtures.doveadm)
    func knownHashes(field: String) throws {
        let stored = try StoredPassword(field: field)
        #expect(stored.verify(Secret(Fixtures.password), user: "bob@example.com") == .match)
        #expect(stored.verify(Secret("pencil2"), user: "bob@example.com") == .mismatch)
        #expect(stored.verify(Secret("Pencil"), user: "bob@example.com") == .mismatch)
        #expect(stored.verify(Secret(""), user: "bob@example.com") == .mismatch)
        #expect(stored.verify(Secret("penci"), user: "bob@example.com") == .mismatch)
    }

    @Test func noPrefixMeansCrypt() throws {
        let stored = try StoredPassword(field: "$5$OGEt9vgD3C.9ZaVG$5jDJuTqnC7U5fNVDH.Z6K4ByQoUKJ1ecrrI9lbBDBT2")
        #expect(stored.scheme == .crypt)
        #expect(stored.verify(Secret("pencil"), user: "x") == .match)
    }

    @Test func schemeNamesAreCaseInsensitive() throws {
        #expect(try StoredPassword(field: "{plain}x").scheme == .plain)
        #expect(
            try StoredPassword(
                field:
                    "{Sha512-Crypt}$6$jX7HZaIGTnR4iQO3$K9IfADgv5VUgLIKp1m1d/FyRFWpqsuRpSsMU..55OahsDWJT/rYPBGBIBxIBUkdN.L62jc1O5G.zdaQ4j95RX0"
            ).scheme == .sha512Crypt)
        #expect(PasswordScheme(name: "blf-crypt") == .blfCrypt)
        #expect(PasswordScheme(name: "CLEAR") == .plain)
        #expect(PasswordScheme(name: "nope") == nil)
    }

    @Test func digestMD5UsesUserAndRealm() throws {
        let stored = try StoredPassword(field: Fixtures.digestBob)
        #expect(stored.verify(Secret("pencil"), user: "bob@example.com") == .match)
        #expect(stored.verify(Secret("pencil"), user: "bob@example.org") == .mismatch)
        #expect(stored.verify(Secret("pencil"), user: "alice@example.com") == .mismatch)
    }

    // MARK: new hashes

    @Test("every writable scheme hashes and verifies", arguments: PasswordScheme.hashable)
    func hashRoundTrip(scheme: PasswordScheme) throws {
        let field = try scheme.hash(Secret("correct horse"), user: "bob@example.com")
        #expect(field.hasPrefix("{\(scheme.rawValue)}"))
        let stored = try StoredPassword(field: field)
        #expect(stored.scheme == scheme)
        #expect(stored.verify(Secret("correct horse"), user: "bob@example.com") == .match)
        #expect(stored.verify(Secret("correct horsE"), user: "bob@example.com") == .mismatch)
        #expect(!field.contains("correct") || scheme == .plain)
    }

    @Test func defaultIsYescrypt() throws {
        let field = try PasswordScheme.defaultForNewPasswords.hash(Secret("x1"))
        #expect(field.hasPrefix("{CRYPT}$y$"))
    }

    @Test func bcryptCostIsAtLeastTen() throws {
        let field = try PasswordScheme.blfCrypt.hash(Secret("x1"))
        #expect(field.hasPrefix("{BLF-CRYPT}$2y$10$"))
    }

    @Test(
        "crypt_gensalt settings of every method verify",
        arguments: ["$y$", "$gy$", "$6$", "$5$", "$2b$", "$2y$", "$1$"])
    func gensaltMethods(prefix: String) throws {
        let pw = Array("tr0ub4dor".utf8)
        let hash = try pw.withUnsafeBufferPointer {
            try LibCrypt.hash(passphrase: $0, prefix: prefix, count: prefix.hasPrefix("$2") ? 4 : 0).get()
        }
        #expect(hash.hasPrefix(prefix))
        let stored = try StoredPassword(field: "{CRYPT}" + hash)
        #expect(stored.verify(Secret("tr0ub4dor"), user: "u") == .match)
        #expect(stored.verify(Secret("tr0ub4dor "), user: "u") == .mismatch)
    }

    @Test func unstorablePasswords() {
        #expect(throws: PasswordSchemeError.passwordNotStorable("it is empty")) {
            try PasswordScheme.crypt.hash(Secret(""))
        }
        #expect(throws: PasswordSchemeError.self) { try PasswordScheme.plain.hash(Secret("a:b")) }
        #expect(throws: PasswordSchemeError.self) { try PasswordScheme.crypt.hash(Secret("a\nb")) }
        #expect(throws: PasswordSchemeError.self) { try PasswordScheme.crypt.hash(Secret([0x61, 0x00, 0x62])) }
        #expect(throws: PasswordSchemeError.verifyOnly(.md5Crypt)) { try PasswordScheme.md5Crypt.hash(Secret("abc")) }
        #expect(throws: PasswordSchemeError.needsUserName(.digestMD5)) {
            try PasswordScheme.digestMD5.hash(Secret("abc"))
        }
        // A colon is fine for hashing schemes.
        #expect(throws: Never.self) { try PasswordScheme.ssha256.hash(Secret("a:b")) }
    }

    // MARK: unverifiable and malformed

    @Test func cryptHashLibcryptCannotComputeIsUnverifiable() throws {
        let stored = try StoredPassword(field: "{CRYPT}!$6$locked")
        guard case .unverifiable = stored.verify(Secret("pencil"), user: "u") else {
            Issue.record("expected unverifiable")
            return
        }
    }

    @Test func passwordWithNULNeverMatchesCrypt() throws {
        let stored = try StoredPassword(
            field: "{SHA256-CRYPT}$5$OGEt9vgD3C.9ZaVG$5jDJuTqnC7U5fNVDH.Z6K4ByQoUKJ1ecrrI9lbBDBT2")
        #expect(stored.verify(Secret(Array("pencil".utf8) + [0]), user: "u") == .mismatch)
    }

    struct BrokenField: Sendable, CustomTestStringConvertible {
        var field: String
        var expected: PasswordSchemeError
        var testDescription: String { field }
    }

    static let brokenFields: [BrokenField] = [
        BrokenField(field: "{PLAIN}", expected: .emptyValue(.plain)),
        BrokenField(field: "", expected: .emptyValue(.crypt)),
        BrokenField(field: "{NOPE}abc", expected: .unknownScheme(name: "NOPE")),
        BrokenField(field: "{hunter2}abc", expected: .unknownScheme(name: nil)),
        BrokenField(field: "{SHA1", expected: .unterminatedScheme),
        BrokenField(
            field: "{SSHA256}not base64!",
            expected: .malformedValue(.ssha256, expected: "base64 of a 32-byte digest followed by a salt")),
        BrokenField(
            field: "{SSHA256}AAAA",
            expected: .malformedValue(.ssha256, expected: "base64 of a 32-byte digest followed by a salt")),
        BrokenField(
            field: "{SSHA512}AAAA",
            expected: .malformedValue(.ssha512, expected: "base64 of a 64-byte digest followed by a salt")),
        BrokenField(field: "{CRAM-MD5}abcd", expected: .malformedValue(.cramMD5, expected: "64 hex digits")),
        BrokenField(
            field: "{CRAM-MD5}" + String(repeating: "g", count: 64),
            expected: .malformedValue(.cramMD5, expected: "64 hex digits")),
        BrokenField(
            field: "{DIGEST-MD5}e77b335a942b47d2d097d705695ea57",
            expected: .malformedValue(.digestMD5, expected: "32 hex digits")),
        BrokenField(
            field: "{CRYPT}has space",
            expected: .malformedValue(.crypt, expected: "a crypt hash is printable ASCII without spaces")),
    ]

    @Test("malformed fields are rejected with a clear error", arguments: brokenFields)
    func malformed(_ row: BrokenField) {
        #expect(throws: row.expected) { try StoredPassword(field: row.field) }
    }

    @Test(
        "malformed SCRAM values",
        arguments: [
            "{SCRAM-SHA-1}4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=",
            "{SCRAM-SHA-1}x,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=",
            "{SCRAM-SHA-1}0,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=",
            "{SCRAM-SHA-256}4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=",
            "{SCRAM-SHA-1}4096,,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=",
        ])
    func malformedSCRAM(field: String) {
        #expect(throws: PasswordSchemeError.self) { try StoredPassword(field: field) }
    }

    @Test func errorsNeverShowTheSecret() {
        let secretish = ["{secretword}xyz", "{PLAIN", "{SSHA256}secretword", "{CRAM-MD5}secretword"]
        for field in secretish {
            do {
                _ = try StoredPassword(field: field)
                Issue.record("\(field) should not parse")
            } catch {
                #expect(!"\(error)".contains("secretword"))
                #expect(!"\(error)".contains("xyz"))
            }
        }
        #expect("\(try! StoredPassword(field: "{PLAIN}secretword"))" == "{PLAIN}<hidden>")
    }

    // MARK: credentials

    @Test func plaintextGivesEveryCredential() throws {
        let stored = try StoredPassword(field: "{PLAIN}pencil")
        #expect(stored.credentialSchemes == Set(CredentialScheme.allCases))
        guard case .plaintext(let s) = stored.credential(.plaintext, user: "bob@example.com") else {
            Issue.record("no plaintext")
            return
        }
        #expect(s.constantTimeEquals(Array("pencil".utf8)))
        guard case .cramMD5Context(let c) = stored.credential(.cramMD5, user: "bob") else {
            Issue.record("no cram")
            return
        }
        #expect(
            Hex.encodeString(c.bytes) == "7f47ace0e2af8f6cdeb72c03243a8c87834e19104164d6a42de72d243adb4080")
        // DIGEST-MD5 gets the cleartext: the mechanism builds HA1 from the name and realm as the client
        // typed them (Dovecot accepts username="u@example.org",realm="" as well as username="u",realm=...).
        guard case .plaintext(let d) = stored.credential(.digestMD5, user: "bob@example.com") else {
            Issue.record("no digest")
            return
        }
        #expect(d.constantTimeEquals(Array("pencil".utf8)))
        guard
            case .scram(let hash, let salt, let iterations, let storedKey, _) = stored.credential(
                .scramSHA256, user: "bob")
        else {
            Issue.record("no scram")
            return
        }
        #expect(hash == .sha256 && iterations == 4096 && salt.count == 16 && storedKey.count == 32)
    }

    /// Dovecot names the stored challenge-response schemes after their mechanisms.
    @Test func storedCredentialsAreTheMechanismSchemes() {
        let stored = PasswordScheme.allCases.compactMap { s in s.storedCredential.map { (s, $0) } }
        #expect(stored.map(\.0) == [.cramMD5, .digestMD5, .scramSHA1, .scramSHA256])
        for (scheme, credential) in stored {
            #expect(scheme.rawValue == credential.rawValue)
            #expect(scheme.credentialSchemes == [credential])
        }
        #expect(PasswordScheme.plain.storedCredential == nil)
        #expect(PasswordScheme.crypt.credentialSchemes.isEmpty)
    }

    @Test func hashedEntriesGiveOnlyTheirOwnKind() throws {
        let cram = try StoredPassword(field: Fixtures.doveadm[0])
        #expect(cram.credentialSchemes == [.cramMD5])
        #expect(cram.credential(.plaintext, user: "u") == nil)
        let scram = try StoredPassword(field: Fixtures.doveadm[7])
        guard case .scram(.sha256, let salt, 4096, _, _) = scram.credential(.scramSHA256, user: "u") else {
            Issue.record("no scram")
            return
        }
        #expect(Base64.encodeString(salt) == "RoPeF0t2Hs0OBSIQcwrA8A==")
        #expect(scram.credential(.scramSHA1, user: "u") == nil)
        let crypt = try StoredPassword(field: Fixtures.doveadm[3])
        #expect(crypt.credentialSchemes.isEmpty)
    }
}
