import AuthProtocol
import Testing

private func line(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct ClientMessageParserTests {
    @Test(arguments: [
        ("VERSION\t1\t0", ClientMessage.version(major: 1, minor: 0)),
        ("VERSION\t1\t99", .version(major: 1, minor: 99)),
        ("VERSION\t2\t0", .version(major: 2, minor: 0)),  // major is checked by the session
        ("CPID\t4583", .cpid(4583)),
        ("CANCEL\t5", .cancel(id: 5)),
        ("CONT\t3\tAHRlc3QAdGVzdHBhc3M=", .cont(id: 3, data: Array("AHRlc3QAdGVzdHBhc3M=".utf8))),
        ("CONT\t3\t", .cont(id: 3, data: [])),
        ("CONT\t1\tdGVzdA==\tfoo=bar", .cont(id: 1, data: Array("dGVzdA==\tfoo=bar".utf8))),  // raw rest, as 2.3
        ("VERSION\t1\t2\r", .version(major: 1, minor: 2)),  // CR before LF removed
    ])
    func parsesValidLines(input: String, expected: ClientMessage) throws {
        #expect(try ClientMessageParser.parse(line(input)) == expected)
    }

    @Test func parsesPostfixAuthLine() throws {
        let msg = try ClientMessageParser.parse(line(
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7\tsecured\tresp=AHRlc3QAdGVzdHBhc3M="))
        guard case .auth(let cmd) = msg else { Issue.record("not AUTH"); return }
        #expect(cmd.id == 1)
        #expect(cmd.mechanismKey == "PLAIN")
        #expect(cmd.service == "smtp")
        #expect(cmd.localIP == "127.0.0.1")
        #expect(cmd.remoteIP == "192.0.2.7")
        #expect(cmd.secured)
        #expect(cmd.initialResponse(clientMinor: 0) == .bytes(Array("\0test\0testpass".utf8)))
    }

    @Test func parsesEximAndDoveadmLines() throws {
        let exim = try ClientMessageParser.parse(line(
            "AUTH\t1\tplain\tservice=smtp\tsecured\tvalid-client-cert\trip=192.0.2.7\tlip=192.0.2.1\tnologin\tresp="))
        guard case .auth(let e) = exim else { Issue.record("not AUTH"); return }
        #expect(e.mechanismKey == "PLAIN")
        #expect(e.validClientCert)
        #expect(e.initialResponse(clientMinor: 0) == .absent)  // Exim's empty resp= with minor 0
        #expect(e.initialResponse(clientMinor: 2) == .bytes([]))  // same bytes from a 1.2 client: empty

        let doveadm = try ClientMessageParser.parse(line(
            "AUTH\t1\tPLAIN\tservice=doveadm\tdebug\tresp=dGVzdAB0ZXN0AHRlc3RwYXNz"))
        guard case .auth(let d) = doveadm else { Issue.record("not AUTH"); return }
        #expect(d.debug)
        #expect(d.service == "doveadm")

        let v24 = try ClientMessageParser.parse(line("AUTH\t7\tSCRAM-SHA-256\tprotocol=imap\tfinal-resp-ok"))
        guard case .auth(let p) = v24 else { Issue.record("not AUTH"); return }
        #expect(p.service == "imap")
        #expect(p.finalResponseOK)
        #expect(p.initialResponse(clientMinor: 3) == .absent)
    }

    @Test func initialResponseRules() throws {
        func ir(_ resp: String, minor: UInt32) throws -> InitialResponse {
            guard case .auth(let c) = try ClientMessageParser.parse(line("AUTH\t1\tPLAIN\tservice=smtp\t\(resp)")) else {
                throw ProtocolViolation.brokenAuth("test")
            }
            return c.initialResponse(clientMinor: minor)
        }
        #expect(try ir("resp==", minor: 0) == .bytes([]))
        #expect(try ir("resp", minor: 0) == .absent)
        #expect(try ir("resp", minor: 2) == .bytes([]))
        #expect(try ir("resp=AHRlc3QAdGVzdHBhc3M", minor: 0) == .invalidBase64)
        #expect(try ir("resp=AHRl c3QAdGVzdHBhc3M=", minor: 0) == .bytes(Array("\0test\0testpass".utf8)))
    }

    @Test func leadingZeroIdsAndEscapedFields() throws {
        guard case .auth(let c) = try ClientMessageParser.parse(line("AUTH\t007\tPLAIN\tservice=sm\u{01}ttp\tfoo=bar\tbaz\t=x")) else {
            Issue.record("not AUTH"); return
        }
        #expect(c.id == 7)
        #expect(c.service == "sm\ttp")
        #expect(c.rawInitialResponse == nil)
    }

    @Test(arguments: [
        ("", ProtocolViolation.emptyLine),
        ("\r", .emptyLine),
        ("auth\t1\tPLAIN\tservice=smtp", .unknownCommand("auth")),
        ("HELLO", .unknownCommand("HELLO")),
        ("VERSION\t1", .invalidVersionLine("VERSION?1")),
        ("VERSION\t1\t0\tx", .invalidVersionLine("VERSION?1?0?x")),
        ("VERSION", .invalidVersionLine("VERSION")),
        ("CPID\t0", .invalidCPID("CPID?0")),
        ("CPID\t", .invalidCPID("CPID?")),
        ("CPID\tabc", .invalidCPID("CPID?abc")),
        ("AUTH\t0\tPLAIN\tservice=smtp", .brokenAuth("bad id")),
        ("AUTH\t4294967296\tPLAIN\tservice=smtp", .brokenAuth("bad id")),
        ("AUTH\tx\tPLAIN\tservice=smtp", .brokenAuth("bad id")),
        ("AUTH\t1", .brokenAuth("no mechanism")),
        ("AUTH", .brokenAuth("no id")),
        ("AUTH\t1\t\tservice=smtp", .brokenAuth("bad mechanism name")),
        ("AUTH\t1\tPLAIN\tresp=AAAA\tservice=smtp", .parametersAfterResp),
        ("AUTH\t1\tPLAIN\tservice=smtp\tresp=AAAA\t", .parametersAfterResp),
        ("AUTH\t1\tPLAIN\tlip=1.2.3.4", .missingService),
        ("CONT\t1", .brokenCont),
        ("CONT\tx\tAAAA", .brokenCont),
        ("CONT\t\tAAAA", .brokenCont),
        ("CANCEL\tx", .brokenCancel),
        ("CANCEL\t5\tx", .brokenCancel),
        ("CANCEL", .brokenCancel),
        ("AUTH\t1\tPL\0AIN\tservice=smtp", .nulByte),
    ])
    func rejectsBrokenLines(input: String, expected: ProtocolViolation) {
        #expect(throws: expected) { try ClientMessageParser.parse(line(input)) }
    }

    @Test func lineLengthLimit() throws {
        let ok = "CONT\t1\t" + String(repeating: "A", count: ProtocolLimits.maxLineLength - 7)
        #expect(ok.utf8.count == 16383)
        #expect(try ClientMessageParser.parse(line(ok)) != nil)
        #expect(throws: ProtocolViolation.lineTooLong) { try ClientMessageParser.parse(line(ok + "A")) }
    }

    @Test func emptyServiceAccepted() throws {
        guard case .auth(let c) = try ClientMessageParser.parse(line("AUTH\t1\tPLAIN\tservice")) else {
            Issue.record("not AUTH"); return
        }
        #expect(c.service == "")
    }
}
