import AuthProtocol
import Testing

@Suite struct TabEscapeTests {
    @Test(arguments: [
        ("plain", "plain"),
        ("a\tb", "a\u{01}tb"),
        ("a\nb\rc", "a\u{01}nb\u{01}rc"),
        ("\u{01}", "\u{01}1"),
        ("", ""),
    ])
    func escapes(raw: String, escaped: String) {
        #expect(TabEscape.escape(raw) == escaped)
        #expect(String(decoding: TabEscape.unescape(Array(escaped.utf8)), as: UTF8.self) == raw)
    }

    @Test func nulRoundTrip() {
        #expect(TabEscape.escape([0, 65]) == [1, UInt8(ascii: "0"), 65])
        #expect(TabEscape.unescape([1, UInt8(ascii: "0"), 65]) == [0, 65])
    }

    @Test func readerQuirks() {
        // 0x01 + other byte gives that byte; a trailing 0x01 is dropped; 'l' is not LF.
        #expect(TabEscape.unescape(Array("a\u{01}xb\u{01}".utf8)) == Array("axb".utf8))
        #expect(TabEscape.unescape(Array("\u{01}l".utf8)) == Array("l".utf8))
    }
}

@Suite struct DovecotBase64Tests {
    @Test(arguments: [
        ("", Optional<[UInt8]>.some([])),
        ("AHRlc3QAdGVzdHBhc3M=", Array("\0test\0testpass".utf8)),
        ("dGVzdA==", Array("test".utf8)),
        ("dGVz", Array("tes".utf8)),
        ("AHRl c3QAdGVzdHBhc3M=", Array("\0test\0testpass".utf8)),
        ("dGVzdA=\n=", Array("test".utf8)),  // whitespace inside padding
        ("AHRlc3QAdGVzdHBhc3M", nil),  // missing padding
        ("dGVzdA===", nil),  // surplus padding
        ("dGVzdA==dGVz", nil),  // data after padding
        ("dGV*", nil),
        ("=", nil),
        ("A===", nil),
        ("AB=C", nil),
    ])
    func decodes(input: String, expected: [UInt8]?) {
        #expect(DovecotBase64.decode(input) == expected)
    }

    @Test func encodeRoundTrip() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(DovecotBase64.decode(DovecotBase64.encode(bytes)) == bytes)
        }
        #expect(DovecotBase64.encode(Array("Username:".utf8)) == "VXNlcm5hbWU6")
        #expect(DovecotBase64.encode(Array("Password:".utf8)) == "UGFzc3dvcmQ6")
    }
}

@Suite struct ServerMessageTests {
    private func text(_ m: ServerMessage) -> String { String(decoding: m.encoded(), as: UTF8.self) }

    @Test func encodesReplies() {
        #expect(text(.version) == "VERSION\t1\t2\n")
        #expect(text(.mech(name: "PLAIN", flags: ["plaintext"])) == "MECH\tPLAIN\tplaintext\n")
        #expect(text(.mech(name: "EXTERNAL", flags: [])) == "MECH\tEXTERNAL\n")
        #expect(text(.ok(id: 1, user: "test", fields: [])) == "OK\t1\tuser=test\n")
        #expect(text(.cont(id: 3, base64: "")) == "CONT\t3\t\n")  // trailing TAB kept
        #expect(text(.fail(id: 2, user: "test", code: nil, reason: nil, fields: [])) == "FAIL\t2\tuser=test\n")
        #expect(text(.fail(id: 2, user: nil, code: .invalidBase64, reason: "Invalid base64 data in initial response", fields: []))
            == "FAIL\t2\tcode=invalid_base64\treason=Invalid base64 data in initial response\n")
    }

    @Test func escapesEveryValue() {
        #expect(text(.ok(id: 1, user: "a\tb\nc", fields: [("x", "1\u{01}")]))
            == "OK\t1\tuser=a\u{01}tb\u{01}nc\tx=1\u{01}1\n")
        #expect(text(.fail(id: 1, user: "te st\r", code: nil, reason: "x\ty", fields: []))
            == "FAIL\t1\tuser=te st\u{01}r\treason=x\u{01}ty\n")
    }
}
