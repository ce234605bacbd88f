import AuthEngine
import Logging
import Testing

@testable import AuthServer

/// The per-request line is formatted twice in the code base: by `StderrRequestLog` (bytes, the daemon's
/// hot path) and by `SaslgateLogHandler` from metadata (any other logger). fail2ban filters and admins
/// rely on one layout: both must give the same bytes for the same record.
@Suite struct LogFormatTests {
    static let records: [AuthLogRecord] = [
        AuthLogRecord(
            result: "ok", user: "alice@example.org", authcid: nil, mechanism: "PLAIN", service: "smtp",
            remoteIP: "192.0.2.7", localIP: "127.0.0.1", secured: true, passdb: "passwd-file:/etc/saslgate/users",
            reason: nil, delayMS: nil, durationMS: 0, conn: 1, cpid: 4242, id: 1),
        AuthLogRecord(
            result: "failed", user: "bob \"the\" = \\builder", authcid: "admin@example.org", mechanism: "LOGIN",
            service: "", remoteIP: "", localIP: "::1", secured: false, passdb: nil,
            reason: "password mismatch", delayMS: 2500, durationMS: 2513, conn: 18_446_744_073_709_551_615,
            cpid: nil, id: 4_294_967_295),
        // A request that came over TCP: the auth client's address last.
        AuthLogRecord(
            result: "ok", user: "carol@example.org", authcid: nil, mechanism: "PLAIN", service: "smtp",
            remoteIP: "198.51.100.4", localIP: "", secured: true, passdb: nil, reason: nil, delayMS: nil,
            durationMS: 1, conn: 3, cpid: 12, id: 2, peer: "[2001:db8::5]:40123"),
    ]

    @Test(arguments: [false, true])
    func bothFormattersAgree(journald: Bool) {
        let format = LogLineFormat(label: "saslgated", journald: journald)
        let fast = StderrRequestLog(level: .info, lineFormat: format)
        let handler = SaslgateLogHandler(level: .info, lineFormat: format)
        for record in Self.records {
            for level in [Logger.Level.info, .notice] {
                var a = fast.format(record, level: level)
                var b = handler.format(level, message: record.message, metadata: record.metadata)
                if !journald {
                    // Timestamps may differ by a millisecond between the two calls: compare after them.
                    a.removeFirst(25)
                    b.removeFirst(25)
                }
                #expect(String(decoding: a, as: UTF8.self) == String(decoding: b, as: UTF8.self))
            }
        }
    }

    @Test func layoutAndQuoting() {
        let format = LogLineFormat(label: "saslgated", journald: true)
        let fast = StderrRequestLog(level: .info, lineFormat: format)
        let line = String(decoding: fast.format(Self.records[1], level: .notice), as: UTF8.self)
        let expected = #"<5>saslgated[PID]: notice: auth failed result=failed user="bob \"the\" = \\builder" "#
            + #"authcid=admin@example.org mech=LOGIN service="" rip="" lip=::1 secured=no reason="password mismatch" "#
            + #"delay_ms=2500 duration_ms=2513 conn=18446744073709551615 id=4294967295"#
        #expect(line.replacing(/\[\d+\]/, with: "[PID]") == expected)
    }

    @Test func theTCPPeerComesLast() {
        let format = LogLineFormat(label: "saslgated", journald: true)
        let line = String(decoding: StderrRequestLog(level: .info, lineFormat: format).format(Self.records[2], level: .info), as: UTF8.self)
        #expect(line.hasSuffix(" duration_ms=1 conn=3 cpid=12 id=2 peer=[2001:db8::5]:40123"), "\(line)")
    }

    @Test func timestampShape() {
        var bytes: [UInt8] = []
        LogLineFormat.appendTimestamp(to: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(text)")
    }
}
