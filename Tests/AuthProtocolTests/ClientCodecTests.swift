import AuthCore
import AuthProtocol
import Testing

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Runs one encoder call on a fresh buffer.
private func encoded(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
    var out: [UInt8] = []
    body(&out)
    return out
}

/// The line without its LF, as a server's reader hands it to the parser.
private func withoutLF(_ bytes: [UInt8]) -> [UInt8] {
    #expect(bytes.last == 0x0A)
    #expect(bytes.dropLast().allSatisfy { $0 != 0x0A }, "exactly one LF, at the end")
    return Array(bytes.dropLast())
}

@Suite("Client codec: lines a client writes")
struct ClientLineEncoderTests {
    @Test func handshake() throws {
        let hello = encoded {
            ClientLineEncoder.version(minor: 0, into: &$0)
            ClientLineEncoder.cpid(4583, into: &$0)
        }
        #expect(text(hello) == "VERSION\t1\t0\nCPID\t4583\n")
        #expect(text(encoded { ClientLineEncoder.version(into: &$0) }) == "VERSION\t1\t2\n")
        let lines = hello.split(separator: 0x0A).map(Array.init)
        #expect(try ClientMessageParser.parse(lines[0]) == .version(major: 1, minor: 0))
        #expect(try ClientMessageParser.parse(lines[1]) == .cpid(4583))
    }

    /// What Postfix sends (docs/PROTOCOL.md §1.6), byte for byte.
    @Test func postfixAuthLine() {
        let response = Array("\0test\0testpass".utf8)
        let line = response.withUnsafeBufferPointer { resp in
            encoded {
                ClientLineEncoder.auth(
                    id: 1, mechanism: "PLAIN",
                    parameters: [
                        AuthParameter("service", "smtp"), AuthParameter("nologin"), AuthParameter("lip", "127.0.0.1"),
                        AuthParameter("rip", "127.0.0.1"),
                    ], initialResponse: resp, into: &$0)
            }
        }
        #expect(
            text(line)
                == "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=AHRlc3QAdGVzdHBhc3M=\n")
    }

    /// Every AUTH line the encoder writes parses back, on the server's own parser, to what was meant.
    @Test(arguments: [
        ("PLAIN", [UInt8]("\0user\0pencil".utf8) as [UInt8]?),
        ("LOGIN", nil),
        ("scram-sha-256", [UInt8]("n,,n=user,r=abc".utf8)),
        ("PLAIN", []),
    ])
    func authRoundTrip(mechanism: String, response: [UInt8]?) throws {
        let parameters = [
            AuthParameter("service", "smtp\tsubmission"), AuthParameter("lip", "192.0.2.1"),
            AuthParameter("rip", "192.0.2.7"), AuthParameter("session", "a\u{01}b\nc"), AuthParameter("secured"),
            AuthParameter("no-penalty"), AuthParameter("final-resp-ok"), AuthParameter("debug"),
        ]
        let line = withoutLF(
            encoded { out in
                if let response {
                    response.withUnsafeBufferPointer {
                        ClientLineEncoder.auth(
                            id: 4_294_967_295, mechanism: mechanism, parameters: parameters, initialResponse: $0,
                            into: &out)
                    }
                } else {
                    ClientLineEncoder.auth(
                        id: 4_294_967_295, mechanism: mechanism, parameters: parameters, initialResponse: nil,
                        into: &out)
                }
            })
        guard case .auth(let command) = try ClientMessageParser.parse(line) else {
            Issue.record("not AUTH")
            return
        }
        #expect(command.id == 4_294_967_295)
        #expect(command.mechanism == mechanism)
        #expect(command.service == "smtp\tsubmission")
        #expect(command.localIP == "192.0.2.1" && command.remoteIP == "192.0.2.7")
        #expect(command.session == "a\u{01}b\nc")
        #expect(command.secured && command.noPenalty && command.finalResponseOK && command.debug)
        #expect(!command.validClientCert)
        // An empty response is `resp==`: empty for old and new clients alike.
        for minor: UInt32 in [0, 2] {
            #expect(command.initialResponse(clientMinor: minor) == (response.map { .bytes($0) } ?? .absent))
        }
    }

    @Test func escapesEveryField() {
        let line = encoded {
            ClientLineEncoder.auth(
                id: 7, mechanism: "PL\tAIN", parameters: [AuthParameter("service", "a\tb\rc\nd\u{01}e\0f")],
                initialResponse: nil, into: &$0)
        }
        #expect(text(line) == "AUTH\t7\tPL\u{01}tAIN\tservice=a\u{01}tb\u{01}rc\u{01}nd\u{01}1e\u{01}0f\n")
    }

    @Test func authInParts() {
        var out: [UInt8] = []
        ClientLineEncoder.authStart(id: 12, mechanism: "PLAIN", into: &out)
        ClientLineEncoder.parameter("service", value: "smtp", into: &out)
        Array("10.0.0.1".utf8).withUnsafeBufferPointer { ClientLineEncoder.parameter("rip", value: $0, into: &out) }
        ClientLineEncoder.parameter("secured", into: &out)
        Array("\0u\0p".utf8).withUnsafeBufferPointer { ClientLineEncoder.authEnd(initialResponse: $0, into: &out) }
        #expect(text(out) == "AUTH\t12\tPLAIN\tservice=smtp\trip=10.0.0.1\tsecured\tresp=AHUAcA==\n")
    }

    @Test func contAndCancel() throws {
        let cont = withoutLF(
            encoded { out in Array("Username".utf8).withUnsafeBufferPointer { ClientLineEncoder.cont(id: 3, response: $0, into: &out) } })
        #expect(text(cont) == "CONT\t3\tVXNlcm5hbWU=")
        #expect(try ClientMessageParser.parse(cont) == .cont(id: 3, data: Array("VXNlcm5hbWU=".utf8)))
        let empty = withoutLF(encoded { out in [UInt8]().withUnsafeBufferPointer { ClientLineEncoder.cont(id: 3, response: $0, into: &out) } })
        #expect(try ClientMessageParser.parse(empty) == .cont(id: 3, data: []))
        let cancel = withoutLF(encoded { ClientLineEncoder.cancel(id: 9, into: &$0) })
        #expect(try ClientMessageParser.parse(cancel) == .cancel(id: 9))
    }

    @Test func appendsToWhatIsThere() {
        var out = Array("VERSION\t1\t2\n".utf8)
        ClientLineEncoder.cancel(id: 1, into: &out)
        #expect(text(out) == "VERSION\t1\t2\nCANCEL\t1\n")
    }
}

@Suite("Client codec: lines a server writes")
struct ServerLineParserTests {
    private func parse(_ s: String) throws -> ServerLine { try ServerLine.parse(Array(s.utf8)) }

    /// Whatever saslgated writes, a client reads back as meant.
    @Test func roundTripsServerMessages() throws {
        func back(_ m: ServerMessage) throws -> ServerLine { try ServerLine.parse(withoutLF(m.encoded())) }
        #expect(try back(.version) == .version(major: 1, minor: 2))
        #expect(try back(.mech(name: "DIGEST-MD5", flags: ["dictionary", "active", "mutual-auth"]))
            == .mech(name: "DIGEST-MD5", flags: ["dictionary", "active", "mutual-auth"]))
        #expect(try back(.mech(name: "EXTERNAL", flags: [])) == .mech(name: "EXTERNAL", flags: []))
        #expect(try back(.spid(25985)) == .spid("25985"))
        #expect(try back(.cuid(79)) == .cuid("79"))
        #expect(try back(.cookie("49b5c5e551c63c3b1966bdcaa32ee74b")) == .cookie("49b5c5e551c63c3b1966bdcaa32ee74b"))
        #expect(try back(.done) == .done)
        #expect(try back(.ok(id: 1, user: "a\tb", fields: [("passdb", "passwd-file:/x"), ("nologin", nil)]))
            == .ok(id: 1, fields: [ServerField("user", "a\tb"), ServerField("passdb", "passwd-file:/x"), ServerField("nologin")]))
        #expect(try back(.fail(id: 2, user: "u", code: .tempFail, reason: "x=y\nz", fields: []))
            == .fail(id: 2, fields: [ServerField("user", "u"), ServerField("code", "temp_fail"), ServerField("reason", "x=y\nz")]))
        #expect(try back(.fail(id: 2, user: nil, code: nil, reason: nil, fields: [])) == .fail(id: 2, fields: []))
        #expect(try back(.cont(id: 3, base64: "")) == .cont(id: 3, base64: []))
        #expect(try back(.cont(id: 4, base64: "VXNlcm5hbWU6")) == .cont(id: 4, base64: Array("VXNlcm5hbWU6".utf8)))
    }

    @Test func fieldsByName() throws {
        guard case .fail(_, let fields) = try parse("FAIL\t1\tuser=u\ttemp\tcode=temp_fail\tcode=other") else {
            Issue.record("not FAIL")
            return
        }
        #expect(fields.value("user") == "u")
        #expect(fields.value("temp") == "")
        #expect(fields.value("code") == "temp_fail")
        #expect(fields.value("reason") == nil)
    }

    @Test func lenientWhereClientsAre() throws {
        #expect(try parse("VERSION\t1\t2\r") == .version(major: 1, minor: 2))  // CR before LF
        #expect(try parse("VERSION\t1\t2\textra") == .version(major: 1, minor: 2))
        #expect(try parse("MECH") == .mech(name: "", flags: []))
        #expect(try parse("SPID") == .spid(""))
        #expect(try parse("DONE\tx") == .done)
        #expect(try parse("CANCELLED\t5") == .other(command: "CANCELLED"))
        #expect(try parse("") == .other(command: ""))
        #expect(try parse("OK\t007") == .ok(id: 7, fields: []))
    }

    @Test(arguments: [
        "VERSION", "VERSION\t1", "VERSION\t1\tx", "VERSION\t-1\t2", "VERSION\t4294967296\t0",
        "OK", "OK\t", "OK\t0", "OK\tx\tuser=u", "OK\t4294967296", "FAIL\t", "FAIL\t1x",
        "CONT\t1", "CONT\t\tAAAA", "CONT",
    ])
    func malformedLines(line: String) {
        #expect(throws: MalformedServerLine.self) { try parse(line) }
    }

    @Test func malformedLineDescriptionIsPrintable() {
        do throws(MalformedServerLine) {
            _ = try ServerLine.parse(Array("VERSION\t\u{1b}[31m\tx".utf8))
            Issue.record("parsed")
        } catch {
            #expect(error.description.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F })
            #expect(error.description.hasPrefix("malformed line from the server: VERSION?"))
        }
    }

    /// The allocation-free reader agrees with the typed one, and finds OK's `user=`.
    @Test func replyInPlace() {
        func reply(_ s: String) -> (ServerReply?, String?) {
            Array(s.utf8).withUnsafeBufferPointer { line in
                let r = ServerReply.parse(line)
                return (r, r?.leadingUser(in: line).map { String(decoding: line[$0], as: UTF8.self) })
            }
        }
        func located(_ r: ServerReply?, _ kind: ServerReply.Kind, _ id: UInt32, _ restStart: Int) -> Bool {
            r?.kind == kind && r?.id == id && r?.restStart == restStart
        }
        #expect(located(reply("OK\t5\tuser=alice@example.org\tpassdb=x").0, .ok, 5, 5))
        #expect(reply("OK\t5\tuser=alice@example.org\tpassdb=x").1 == "alice@example.org")
        #expect(reply("OK\t5\tuser=").1 == "")
        #expect(located(reply("OK\t5").0, .ok, 5, 4))
        #expect(reply("OK\t5").1 == nil)
        #expect(reply("FAIL\t6\tcode=temp_fail").1 == nil)
        #expect(reply("FAIL\t6\tuser=bob").1 == "bob")
        #expect(located(reply("CONT\t7\t").0, .cont, 7, 7))
        #expect(reply("CONT\t7\tuser=x").1 == nil)
        for bad in ["OK", "OK\t", "OKAY\t1", "ok\t1", "CONT\t7", "FAIL\t0", "FAIL\t99999999999", "MECH\tPLAIN", "DONE"] {
            #expect(reply(bad).0 == nil, "\(bad)")
        }
    }
}

@Suite("Client codec: the greeting")
struct ServerGreetingTests {
    private func greeting(_ lines: [String]) throws -> ServerGreeting {
        var g = ServerGreeting()
        for line in lines { g.add(try ServerLine.parse(Array(line.utf8))) }
        return g
    }

    /// Dovecot 2.3's greeting, as observed (docs/PROTOCOL.md §1.2).
    @Test func dovecotGreeting() throws {
        let g = try greeting([
            "VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tscram-sha-256\tmutual-auth", "MECH\tEXTERNAL", "SPID\t25985",
            "CUID\t79", "COOKIE\t49b5c5e551c63c3b1966bdcaa32ee74b", "DONE", "MECH\tLATE",
        ])
        #expect(g.isComplete && g.versionCameFirst && !g.spidBeforeMechanism)
        #expect(g.major == 1 && g.minor == 2)
        #expect(g.mechanismNames == ["PLAIN", "SCRAM-SHA-256", "EXTERNAL"])
        #expect(g.mechanisms[1].flags == ["mutual-auth"])
        #expect(g.spid == "25985" && g.cuid == "79" && g.cookie == "49b5c5e551c63c3b1966bdcaa32ee74b")
    }

    /// The auth-master socket's greeting: SPID with no MECH before it.
    @Test func orderFacts() throws {
        let master = try greeting(["VERSION\t1\t1", "SPID\t7", "DONE"])
        #expect(master.spidBeforeMechanism && master.mechanisms.isEmpty)
        let late = try greeting(["MECH\tPLAIN", "VERSION\t1\t2", "VERSION\t2\t0", "DONE"])
        #expect(!late.versionCameFirst)
        #expect(late.major == 1 && late.minor == 2, "the first VERSION counts")
        let unfinished = try greeting(["VERSION\t1\t2", "MECH\tPLAIN", "MECH\t"])
        #expect(!unfinished.isComplete && unfinished.mechanismNames == ["PLAIN"])
    }
}
