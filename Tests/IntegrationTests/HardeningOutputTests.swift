@testable import AuthServer
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the control socket prints is read on an administrator's terminal, and penalty keys are login
/// names a client chose: nothing a client sends may reach that terminal raw.
@Suite(.serialized) struct HardeningOutputTests {
    /// One control-socket command; the answer's lines (the server closes after it).
    func control(_ d: DaemonUnderTest, _ command: String) throws -> [String] {
        let c = try AuthClient(path: d.dir + "/control")
        c.send(command + "\n")
        var lines: [String] = []
        while let line = c.readLine() { lines.append(line) }
        return lines
    }

    func failPlain(_ d: DaemonUnderTest, user: String, rip: String) throws {
        let c = try d.connect()
        c.postfixHandshake()
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=\(rip)\tresp=\(b64("\0\(user)\0wrong"))\n")
        #expect(c.readLine()?.hasPrefix("FAIL\t1\t") == true)
    }

    static func isPrintableASCII(_ line: String) -> Bool { line.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } }

    /// A refused name with a screen-clearing escape and a newline followed by a fake row: the list has
    /// the one real row (the client's IP) and nothing of the name.
    @Test func aHostileRefusedNameForgesNoRow() throws {
        let d = try DaemonUnderTest()
        defer { d.stop() }
        try failPlain(d, user: "x\u{1b}[2J\nip 1.2.3.4 failures=99", rip: "192.0.2.9")
        let rows = try control(d, "PENALTY LIST")
        #expect(rows.count == 1, "\(rows)")
        #expect(rows.first?.hasPrefix("ip 192.0.2.9 failures=1 ") == true, "\(rows)")
        #expect(rows.allSatisfy(Self.isPrintableASCII), "\(rows)")
        #expect(!rows.contains { $0.contains("1.2.3.4") })
    }

    /// With `username_chars` empty, a name the username policy accepts may hold C1 controls (U+009B is
    /// CSI on many terminals, U+0085 a line break): the server escapes them, and the escaped name, as
    /// printed, clears the entries.
    @Test func anAcceptedNameWithControlCharactersIsEscaped() throws {
        let d = try DaemonUnderTest(extraConfig: "username_chars =")
        defer { d.stop() }
        try failPlain(d, user: "x\u{9b}2j\u{85}y", rip: "192.0.2.9")
        let escaped = #"x\xc2\x9b2j\xc2\x85y@example.org"#
        let rows = try control(d, "PENALTY LIST")
        #expect(rows.count == 3, "\(rows)")
        #expect(rows.allSatisfy(Self.isPrintableASCII), "\(rows)")
        #expect(rows.contains { $0.hasPrefix("user \(escaped) failures=1 ") }, "\(rows)")
        #expect(rows.contains { $0.hasPrefix("user+ip \(escaped) 192.0.2.9 failures=1 ") }, "\(rows)")

        let list = try runBuilt("saslgate", ["penalty", "list", "--control", d.dir + "/control"])
        #expect(list.code == 0)
        #expect(list.out.contains("user \(escaped) failures=1 "), "\(list.out)")
        #expect(list.out.split(separator: "\n").allSatisfy { Self.isPrintableASCII(String($0)) })

        let clear = try runBuilt("saslgate", ["penalty", "clear", "--control", d.dir + "/control", escaped])
        #expect(clear.out.contains("cleared 2"), "\(clear.out)")
        let left = try control(d, "PENALTY LIST")
        #expect(left.count == 1 && left[0].hasPrefix("ip 192.0.2.9 failures=1 "), "\(left)")
    }

    @Test func escapeAndUnescape() {
        let hostile = "x\u{1b}[2J\nip 1.2.3.4 failures=99"
        #expect(ControlText.escape(hostile) == #"x\x1b[2J\x0aip 1.2.3.4 failures=99"#)
        #expect(ControlText.escape("a\\b\r\u{7f}") == #"a\\b\x0d\x7f"#)
        #expect(ControlText.escape("jörg@example.org") == #"j\xc3\xb6rg@example.org"#)
        #expect(ControlText.escape("alice@example.org") == "alice@example.org")
        for text in [hostile, "a\\b\r\u{7f}", "jörg", "\\x41", "plain", ""] {
            #expect(ControlText.unescape(ControlText.escape(text)) == text)
        }
        // A name typed as it is (no escapes) is taken as it is; a stray backslash is not escaped text.
        #expect(ControlText.unescape("jörg@example.org") == "jörg@example.org")
        #expect(ControlText.unescape(#"j\xC3\xB6rg"#) == "jörg")
        #expect(ControlText.unescape(#"a\q"#) == nil)
        #expect(ControlText.unescape(#"a\x4"#) == nil)
        #expect(ControlText.unescape(#"a\x+1"#) == nil)
    }
}
