import AuthCore
import Testing

@testable import Passdb

#if canImport(Glibc)
import Glibc
#endif

@Suite("passwd-file parsing")
struct PasswdFileTests {
    static let good = """
        # saslgate users
        alice@example.com:{PLAIN}wonderland

        bob@Example.COM:{SHA256-CRYPT}$5$OGEt9vgD3C.9ZaVG$5jDJuTqnC7U5fNVDH.Z6K4ByQoUKJ1ecrrI9lbBDBT2:1000:1000:Bob::/bin/false:allow_nets=127.0.0.1
          # an indented comment
        carol:$y$j9T$I1wXowWy./cSma7rNYiVP/$vfz/GGbr3e3ouIbiiQwGMoMfPO9PoxLjrWPkttC6c0A
        Dave@example.com:{PLAIN}x\r
        dave@example.com:{PLAIN}y

        """

    @Test func parsesAGoodTable() throws {
        let table = try PasswdFile.parse(contents: Array(Self.good.utf8), path: "users", defaultRealm: "example.com")
        #expect(table.count == 5)
        #expect(
            table.userNames == [
                "alice@example.com", "bob@Example.COM", "carol", "Dave@example.com", "dave@example.com",
            ])
        #expect(table.password(forUser: "alice@example.com")?.scheme == .plain)
        #expect(table.password(forUser: "bob@example.com")?.scheme == .sha256Crypt)
        #expect(table.password(forUser: "carol")?.scheme == .crypt)
        #expect(table.password(forUser: "carol@EXAMPLE.com")?.scheme == .crypt)
        #expect(table.line(ofUser: "bob@example.com") == 4)
        // The trailing CR is not part of the password.
        #expect(table.password(forUser: "Dave@example.com")?.verify(Secret("x"), user: "") == .match)
        #expect(table.credentialSchemes == Set(CredentialScheme.allCases))
    }

    @Test func realmIsCaseInsensitiveLocalPartIsNot() throws {
        let table = try PasswdFile.parse(contents: Array(Self.good.utf8), path: "users", defaultRealm: nil)
        #expect(table.contains(user: "bob@example.com"))
        #expect(table.contains(user: "bob@EXAMPLE.COM"))
        #expect(!table.contains(user: "Bob@example.com"))
        #expect(table.contains(user: "Dave@example.com"))
        #expect(table.contains(user: "dave@example.com"))
        #expect(table.key(forUser: "X@Ex.Org") == "X@ex.org")
        let request = PassdbRequest(user: "bob@EXAMPLE.com", mechanism: "PLAIN", service: "smtp")
        #expect(table.key(for: request) == "bob@example.com")
    }

    @Test func bareUsersAndTheDefaultRealm() throws {
        let text = "carol:{PLAIN}c\nerin@example.com:{PLAIN}e\n"
        let withRealm = try PasswdFile.parse(contents: Array(text.utf8), path: "u", defaultRealm: "Example.COM")
        #expect(withRealm.defaultRealm == "example.com")
        #expect(withRealm.contains(user: "carol"))
        #expect(withRealm.contains(user: "carol@example.com"))
        #expect(withRealm.contains(user: "erin"))
        #expect(!withRealm.contains(user: "carol@other.org"))
        let request = PassdbRequest(user: "carol", mechanism: "PLAIN", service: "smtp")
        #expect(withRealm.key(for: request) == "carol@example.com")

        let bare = try PasswdFile.parse(contents: Array(text.utf8), path: "u", defaultRealm: nil)
        #expect(bare.contains(user: "carol"))
        #expect(!bare.contains(user: "carol@example.com"))
        #expect(!bare.contains(user: "erin"))
    }

    @Test func emptyAndCommentOnlyFilesAreEmptyTables() throws {
        #expect(try PasswdFile.parse(contents: [UInt8](), path: "u").count == 0)
        #expect(try PasswdFile.parse(contents: Array("# nothing\n\n   \n".utf8), path: "u").count == 0)
    }

    @Test func halfWrittenLastLineIsParsed() throws {
        let table = try PasswdFile.parse(contents: Array("a:{PLAIN}1\nb:{PLAIN}2".utf8), path: "u")
        #expect(table.count == 2)
        #expect(table.password(forUser: "b")?.verify(Secret("2"), user: "b") == .match)
        // A last line cut inside a hash is malformed: the whole file is rejected.
        #expect(throws: PasswdFileError.self) {
            try PasswdFile.parse(contents: Array("a:{PLAIN}1\nb:{SSHA256}O7/uJqEKwS3uGnPFQfpc".utf8), path: "u")
        }
    }

    struct BrokenRow: Sendable, CustomTestStringConvertible {
        var line: String
        var message: String
        var testDescription: String { line }
    }

    static let brokenRows: [BrokenRow] = [
        BrokenRow(
            line: "justaname", message: "no ':' after the user name; expected user[@realm]:{SCHEME}password[:...]"),
        BrokenRow(line: ":{PLAIN}x", message: "empty user name; expected user[@realm]:{SCHEME}password[:...]"),
        BrokenRow(
            line: " bob:{PLAIN}x",
            message: "the line starts with white space; remove it (only '#' comments may be indented)"),
        BrokenRow(
            line: "bo b:{PLAIN}x",
            message: "the user name contains white space or a control character; user names are one word"),
        BrokenRow(
            line: "bob\u{1}:{PLAIN}x",
            message: "the user name contains white space or a control character; user names are one word"),
        BrokenRow(line: "@example.com:{PLAIN}x", message: "user '@example.com' has an empty local part before '@'"),
        BrokenRow(
            line: "bob@:{PLAIN}x", message: "user 'bob@' has an empty realm after '@'; write user@realm or a bare user"),
        BrokenRow(line: "bob:", message: "user 'bob' has no password; set one with `saslgate user passwd bob`"),
        BrokenRow(
            line: "bob::1000:1000", message: "user 'bob' has no password; set one with `saslgate user passwd bob`"),
        BrokenRow(
            line: "bob:{PLAIN}",
            message: "user 'bob': empty password after {PLAIN}; set one with `saslgate user passwd USER`"),
        BrokenRow(
            line: "bob:{MD4}abc",
            message:
                "user 'bob': unknown password scheme {MD4}; use one of \(PasswordScheme.supportedList), e.g. make a new hash with `saslgate pw`"
        ),
        BrokenRow(
            line: "bob:{SHA512-CRYPT",
            message:
                "user 'bob': the password field starts with '{' but has no closing '}'; write {SCHEME}value, e.g. {PLAIN}{secret"
        ),
        BrokenRow(
            line: "bob:{CRAM-MD5}abc",
            message:
                "user 'bob': the {CRAM-MD5} value is malformed (64 hex digits); make a new one with `saslgate pw --scheme CRAM-MD5`"
        ),
    ]

    @Test("a broken row is reported as path:line: message", arguments: brokenRows)
    func brokenRow(_ row: BrokenRow) {
        let text = "# header\nok:{PLAIN}fine\n\(row.line)\nok2:{PLAIN}fine\n"
        do {
            _ = try PasswdFile.parse(contents: Array(text.utf8), path: "/etc/saslgate/users", defaultRealm: nil)
            Issue.record("expected an error")
        } catch {
            #expect(error.problems == [PasswdFileProblem(path: "/etc/saslgate/users", line: 3, message: row.message)])
            #expect("\(error)".hasPrefix("/etc/saslgate/users:3: "))
        }
    }

    @Test func invalidUTF8UserName() {
        let bytes: [UInt8] = Array("ok:{PLAIN}x\n".utf8) + [0x62, 0xFF, 0x3A] + Array("{PLAIN}x\n".utf8)
        #expect(
            throws: PasswdFileError.invalid(
                path: "u",
                problems: [
                    PasswdFileProblem(
                        path: "u", line: 2, message: "the user name is not valid UTF-8; save the file as UTF-8")
                ],
                total: 1)
        ) {
            try PasswdFile.parse(contents: bytes, path: "u")
        }
    }

    @Test func everyProblemIsCollected() {
        let text = """
            a:{PLAIN}1
            broken
            b:{PLAIN}2
            a:{PLAIN}3
            c:{NOPE}x
            A@Example.com:{PLAIN}4
            a@example.com:{PLAIN}5
            """
        do {
            _ = try PasswdFile.parse(contents: Array(text.utf8), path: "f", defaultRealm: "example.com")
            Issue.record("expected an error")
        } catch {
            let lines = error.problems.map(\.line)
            #expect(lines == [2, 4, 5, 7])
            #expect(
                error.problems[1].message == "duplicate user 'a' (first defined on line 1); remove one of the two lines"
            )
            #expect(
                error.problems[3].message
                    == "duplicate user 'a@example.com' (first defined on line 1); remove one of the two lines")
            #expect("\(error)".hasSuffix("f: 4 problems; the file was not loaded"))
        }
    }

    @Test func duplicateDiffersOnlyInRealmCase() {
        let text = "bob@example.com:{PLAIN}1\nbob@EXAMPLE.com:{PLAIN}2\n"
        #expect(
            throws: PasswdFileError.invalid(
                path: "f",
                problems: [
                    PasswdFileProblem(
                        path: "f", line: 2,
                        message:
                            "duplicate user 'bob@EXAMPLE.com' (first defined on line 1); remove one of the two lines")
                ], total: 1)
        ) {
            try PasswdFile.parse(contents: Array(text.utf8), path: "f")
        }
    }

    @Test func problemsAreCappedButCounted() {
        let text = String(repeating: "broken\n", count: PasswdFile.maxReportedProblems + 50)
        do {
            _ = try PasswdFile.parse(contents: Array(text.utf8), path: "f")
        } catch {
            #expect(error.problems.count == PasswdFile.maxReportedProblems)
            #expect("\(error)".contains("... and 50 more problems"))
        }
    }

    @Test func noSecretInAnyProblem() {
        let text = """
            s3cretA
            u1:{s3cretB}x
            u2:{PLAIN
            u3:{SSHA256}s3cretC
            u4:{CRAM-MD5}s3cretD
            u5:{SCRAM-SHA-1}s3cretE
            u6:{CRYPT}s3cret F
            """
        do {
            _ = try PasswdFile.parse(contents: Array(text.utf8), path: "f")
            Issue.record("expected an error")
        } catch {
            #expect(error.problems.count == 7)
            #expect(!"\(error)".contains("s3cret"))
        }
    }

    @Test func weakOrUnknownCryptIsAWarningNotAnError() throws {
        let text = "old:{MD5-CRYPT}$1$aBK1ZAHx$nxIjQy1Njk5GL9Kl4/Go//\nlocked:{CRYPT}!locked\n"
        let table = try PasswdFile.parse(contents: Array(text.utf8), path: "f")
        #expect(table.count == 2)
        #expect(table.warnings.map(\.line) == [1, 2])
        #expect(table.warnings.allSatisfy { !$0.description.contains("aBK1ZAHx") })
    }

    @Test func unreadableFile() {
        #expect(throws: PasswdFileError.unreadable(path: "/nonexistent/users", reason: "No such file or directory")) {
            try PasswdFile.load(path: "/nonexistent/users")
        }
        #expect(throws: PasswdFileError.unreadable(path: "/tmp", reason: "not a regular file")) {
            try PasswdFile.load(path: "/tmp")
        }
    }

    @Test func loadsFromDiskWithIdentity() throws {
        let dir = TempDir()
        let path = dir.write("users", "a@x.org:{PLAIN}1\n")
        let table = try PasswdFile.load(path: path)
        #expect(table.count == 1)
        #expect(table.identity?.size == 17)
    }

    /// A large table: 100k users here (debug builds are slow); the 1M-user figure is measured in
    /// release with `SASLGATE_PERF=1 swift test -c release --filter bigTable`.
    @Test func bigTable() throws {
        let perf = getenv("SASLGATE_PERF") != nil
        let n = perf ? 1_000_000 : 100_000
        let dir = TempDir()
        var text: [UInt8] = []
        text.reserveCapacity(n * 90)
        let hash = Array(
            ":{SHA512-CRYPT}$6$jX7HZaIGTnR4iQO3$K9IfADgv5VUgLIKp1m1d/FyRFWpqsuRpSsMU..55OahsDWJT/rYPBGBIBxIBUkdN.L62jc1O5G.zdaQ4j95RX0\n"
                .utf8)
        for i in 0..<n {
            text += Array("user\(i)@Realm\(i % 100).example.com".utf8)
            text += hash
        }
        let path = dir.file("big")
        writeFile(path, text)
        let clock = ContinuousClock()
        var table: PasswdFile?
        let elapsed = try clock.measure { table = try PasswdFile.load(path: path) }
        #expect(table?.count == n)
        #expect(table?.contains(user: "user\(n - 1)@realm\((n - 1) % 100).example.com") == true)
        if perf { print("PERF: loaded \(n) users in \(elapsed)") }
    }
}
