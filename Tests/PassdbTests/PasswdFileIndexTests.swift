import AuthCore
import Testing

@testable import Passdb

/// The compact table: arena entries and the open-addressing index.
@Suite("passwd-file index")
struct PasswdFileIndexTests {
    func table(_ text: String, realm: String? = nil) throws(PasswdFileError) -> PasswdFile {
        try PasswdFile.parse(contents: Array(text.utf8), path: "u", defaultRealm: realm)
    }

    @Test func manyUsersAllFoundAbsentOnesNot() throws {
        let n = 20_000
        var text = ""
        for i in 0..<n { text += "user\(i)@Realm\(i % 7).example:{PLAIN}pw\(i)\n" }
        let t = try table(text)
        #expect(t.count == n)
        for i in stride(from: 0, to: n, by: 1) {
            let p = t.password(forUser: "user\(i)@realm\(i % 7).example")
            #expect(p?.verify(Secret("pw\(i)"), user: "") == .match)
            if p == nil { break }
        }
        #expect(t.line(ofUser: "user\(n - 1)@REALM\((n - 1) % 7).example") == n)
        #expect(!t.contains(user: "user\(n)@realm0.example"))
        #expect(!t.contains(user: "user1@realm0.example"))  // wrong realm
        #expect(!t.contains(user: "User1@realm1.example"))  // local parts keep their case
        #expect(!t.contains(user: "user1"))
        #expect(!t.contains(user: ""))
    }

    @Test func collidingSlotsStillCompareWholeKeys() throws {
        // A tiny table has 8 slots: 6 keys share them, with keys that are prefixes of one another.
        let t = try table("a:{PLAIN}1\nab:{PLAIN}2\nabc:{PLAIN}3\na@b:{PLAIN}4\na@bc:{PLAIN}5\nb:{PLAIN}6\n")
        #expect(t.index.slots.count == 16)
        for (u, pw) in [("a", "1"), ("ab", "2"), ("abc", "3"), ("a@b", "4"), ("a@bc", "5"), ("b", "6")] {
            #expect(t.password(forUser: u)?.verify(Secret(pw), user: "") == .match, "\(u)")
        }
        for absent in ["abcd", "a@", "a@bcd", "c", "A", "ab@c"] { #expect(!t.contains(user: absent), "\(absent)") }
    }

    @Test func defaultRealmSuffixJoinsBareNames() throws {
        let t = try table("carol:{PLAIN}c\nerin@example.com:{PLAIN}e\nx@y@Example.com:{PLAIN}z\n", realm: "Example.COM")
        #expect(t.contains(user: "carol"))
        #expect(t.contains(user: "carol@EXAMPLE.com"))
        #expect(t.contains(user: "erin"))
        #expect(t.contains(user: "x@y@example.com"))
        #expect(!t.contains(user: "x@y"))  // a bare lookup "x@y" is local "x", realm "y"
        #expect(!t.contains(user: "carol@example.co"))
        #expect(!t.contains(user: "caro"))
        #expect(t.userNames == ["carol", "erin@example.com", "x@y@Example.com"])
        // Duplicates across the two spellings: the bare name plus default realm is the full key.
        do {
            _ = try table("carol:{PLAIN}c\ncarol@example.com:{PLAIN}d\n", realm: "example.com")
            Issue.record("expected a duplicate")
        } catch {
            #expect(error.problems.map(\.line) == [2])
            #expect(error.problems.first?.message.contains("first defined on line 1") == true)
        }
    }

    @Test func realmCaseAndNonASCII() throws {
        let t = try table("bob@Example.COM:{PLAIN}1\nzoë@ÉCOLE.fr:{PLAIN}2\nJoe@x.org:{PLAIN}3\n")
        #expect(t.contains(user: "bob@example.com"))
        #expect(t.contains(user: "bob@EXAMPLE.COM"))
        #expect(t.contains(user: "zoë@école.fr"))
        #expect(t.contains(user: "zoë@ÉCOLE.FR"))
        #expect(!t.contains(user: "ZOË@école.fr"))
        #expect(!t.contains(user: "joe@x.org"))
        #expect(t.userNames == ["bob@Example.COM", "zoë@ÉCOLE.fr", "Joe@x.org"])
        #expect(t.line(ofUser: "zoë@école.fr") == 2)
    }

    @Test func duplicatesFirstWinsEveryLaterOneReportedInLineOrder() {
        let text = "a:{PLAIN}1\nb@X.org:{PLAIN}2\nbroken\na:{PLAIN}3\nb@x.ORG:{PLAIN}4\na:{PLAIN}5\n"
        do {
            _ = try table(text)
            Issue.record("expected an error")
        } catch {
            #expect(error.problems.map(\.line) == [3, 4, 5, 6])
            #expect(error.problems[1].message == "duplicate user 'a' (first defined on line 1); remove one of the two lines")
            #expect(
                error.problems[2].message
                    == "duplicate user 'b@x.ORG' (first defined on line 2); remove one of the two lines")
            #expect(error.problems[3].message.contains("first defined on line 1"))
        }
    }

    @Test func problemCapKeepsTheFirstLinesOfBothKinds() {
        var text = "d:{PLAIN}x\n"
        for i in 0..<300 { text += i % 2 == 0 ? "d:{PLAIN}y\n" : "broken\n" }
        do {
            _ = try table(text)
            Issue.record("expected an error")
        } catch {
            let lines = error.problems.map(\.line)
            #expect(lines == Array(2...(1 + PasswdFile.maxReportedProblems)))
            #expect("\(error)".contains("u: 300 problems"))
        }
    }

    @Test func emptyTableFindsNothing() throws {
        for realm in [nil, "example.com"] {
            let t = try table("# only a comment\n", realm: realm)
            #expect(t.count == 0)
            #expect(!t.contains(user: "a"))
            #expect(!t.contains(user: "a@example.com"))
            #expect(t.userNames.isEmpty)
            #expect(t.credentialSchemes.isEmpty)
        }
    }

    @Test func longLinesAcrossChunksAndLastLineWithoutNewline() throws {
        let dir = TempDir()
        let long = String(repeating: "x", count: 3 * PasswdFile.chunkSize)
        var text = ""
        for i in 0..<50_000 { text += "u\(i):{PLAIN}p\(i):1000:1000:gecos:/home:/bin/sh\n" }
        text += "longpw:{PLAIN}\(long)\r\nlast:{PLAIN}end"
        let path = dir.write("users", text)
        let t = try PasswdFile.load(path: path)
        #expect(t.count == 50_002)
        #expect(t.password(forUser: "u49999")?.verify(Secret("p49999"), user: "") == .match)
        #expect(t.password(forUser: "longpw")?.verify(Secret(long), user: "") == .match)
        #expect(t.password(forUser: "last")?.verify(Secret("end"), user: "") == .match)
        #expect(t.line(ofUser: "last") == 50_002)
        // The same bytes parsed from memory give the same table.
        let m = try table(text)
        #expect(m.userNames == t.userNames)
    }
}
