import AuthConfig
import AuthEngine
import AuthProtocol
import Logging
import Testing

/// Which name the penalty table counts a failure under: only a name the username policy accepted
/// (normalized); a refused, client-chosen name is counted under the remote IP alone.
@Suite struct PenaltyNameTests {
    static let hostile = "x\u{1b}[2J\nip 1.2.3.4 failures=99"

    func session(_ io: FakeIO) throws -> (AuthClientSession, PenaltyTable) {
        let service = try makeService()
        let s = makeSession(service, io: io)
        try s.handshake()
        return (s, service.penalty)
    }

    func plain(_ s: AuthClientSession, id: Int, user: String, password: String) throws {
        let message = DovecotBase64.encode(Array("\0\(user)\0\(password)".utf8))
        try s.feed("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.9\tresp=\(message)")
    }

    @Test func aRefusedNameIsCountedUnderTheIPOnly() async throws {
        let io = FakeIO()
        let (s, table) = try session(io)
        try plain(s, id: 1, user: Self.hostile, password: "guess")
        await io.drain()
        await io.advance(by: 3)
        // The client is told the name it sent, as before; the table never sees it.
        #expect(io.take().map { $0.hasPrefix("FAIL\t1") } == [true])
        let rows = table.list()
        #expect(rows.map(\.kind) == ["ip"], "\(rows.map { "\($0.kind) \($0.key)" })")
        #expect(rows.first?.key == "192.0.2.9")
        #expect(rows.first?.failures == 1)
        #expect(!rows.contains { $0.key.contains("x\u{1b}") })
    }

    @Test func aRefusedNameFromLOGINIsCountedUnderTheIPOnly() async throws {
        let io = FakeIO()
        let (s, table) = try session(io)
        try s.feed("AUTH\t1\tLOGIN\tservice=smtp\tsecured\trip=192.0.2.9")
        try s.feed("CONT\t1\t" + DovecotBase64.encode(Array("bad/name".utf8)))
        try s.feed("CONT\t1\t" + DovecotBase64.encode(Array("guess".utf8)))
        await io.drain()
        await io.advance(by: 3)
        #expect(io.take().last?.hasPrefix("FAIL\t1") == true)
        #expect(table.list().map { "\($0.kind) \($0.key)" } == ["ip 192.0.2.9"])
    }

    @Test func anAcceptedNameIsCountedNormalized() async throws {
        let io = FakeIO()
        let (s, table) = try session(io)
        try plain(s, id: 1, user: "test", password: "guess")
        await io.drain()
        await io.advance(by: 3)
        #expect(io.take() == ["FAIL\t1\tuser=test@example.org"])
        #expect(
            table.list().map { "\($0.kind) \($0.key)" }
                == ["ip 192.0.2.9", "user test@example.org", "user+ip test@example.org 192.0.2.9"])
        // A success clears the normalized name's counts.
        try plain(s, id: 2, user: "test", password: "testpass")
        await io.drain()
        #expect(io.take() == ["OK\t2\tuser=test@example.org"])
        #expect(table.list().isEmpty)
    }
}
