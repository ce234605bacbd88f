import AuthProtocol
import NIOCore
import Testing

@testable import AuthServer

/// The connection handler as a client meets it (docs/PROTOCOL.md §1, §3.1, §3.4; docs/SECURITY.md,
/// "Bounded memory"): one `EmbeddedChannel` per test, every answer given on the event loop.
@Suite("ConnectionHandler: framing, flow control and closing")
struct ConnectionHandlerTests {
    /// A connection that got its greeting and finished the handshake.
    func ready() throws -> TestConnection {
        let connection = try TestConnection()
        try connection.connect()
        try connection.send(Client.handshake)
        _ = try connection.lines()
        return connection
    }

    // MARK: - Greeting and handshake

    @Test func greetingIsSentAtOnceOnConnect() throws {
        let connection = try TestConnection()
        defer { connection.finish() }
        #expect(try connection.writes().isEmpty)
        try connection.connect()
        #expect(
            try connection.lines() == [
                "VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext", "SPID\t\(TestConnection.pid)",
                "CUID\t\(TestConnection.cuid)", "COOKIE\t\(TestConnection.cookie)", "DONE",
            ])
    }

    /// A client may write VERSION, CPID and its requests at once (old Exim does, with its one AUTH):
    /// each request is answered, and the replies of one read leave in one write.
    @Test func pipelinedHandshakeAndRequestsAreAnsweredInOneWrite() throws {
        let connection = try TestConnection()
        defer { connection.finish() }
        try connection.connect()
        _ = try connection.writes()
        try connection.send(Client.handshake + Client.authPlain(1) + Client.authPlain(2, password: "wrong"))
        #expect(try connection.writes() == [Client.ok(1) + "\n" + Client.fail(2) + "\n"])
        #expect(connection.isOpen)
    }

    @Test func aClientThatNeverFinishesTheHandshakeIsClosed() throws {
        let connection = try TestConnection()
        defer { connection.finish() }
        try connection.connect()
        try connection.send("VERSION\t1\t0\n")
        let timeout = Int64(connection.handshakeTimeout * 1000)
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(timeout - 1))
        #expect(connection.isOpen)
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!connection.isOpen)
        #expect(connection.warnings.contains { $0.contains("did not complete the handshake") })
    }

    @Test func aFinishedHandshakeHasNoDeadline() throws {
        let connection = try ready()
        defer { connection.finish() }
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(Int64(connection.handshakeTimeout) * 10))
        #expect(connection.isOpen)
        try connection.send(Client.authPlain(1))
        #expect(try connection.lines() == [Client.ok(1)])
    }

    /// With a client_allowlist, a peer whose credentials cannot be read is not served at all.
    @Test func anUnidentifiedPeerIsRefusedWhenThereIsAnAllowlist() throws {
        let connection = try TestConnection(allowlist: PeerAllowlist(uids: [0]))
        defer { connection.finish() }
        try connection.connect()
        #expect(!connection.isOpen)
        #expect(try connection.writes().isEmpty)
        #expect(connection.warnings.contains { $0.contains("client_allowlist") })
    }

    // MARK: - Framing

    @Test func linesSplitAcrossReadsAreJoined() throws {
        let connection = try TestConnection()
        defer { connection.finish() }
        try connection.connect()
        _ = try connection.writes()
        let bytes = Array((Client.handshake + Client.authPlain(1)).utf8)
        for byte in bytes.dropLast() { try connection.send([byte]) }
        #expect(try connection.writes().isEmpty)
        try connection.send([bytes.last!])
        #expect(try connection.lines() == [Client.ok(1)])
    }

    @Test func crlfLineEndsAreAccepted() throws {
        let connection = try TestConnection()
        defer { connection.finish() }
        try connection.connect()
        _ = try connection.writes()
        let lf = Array((Client.handshake + Client.authPlain(1)).utf8)
        try connection.send(lf.flatMap { $0 == UInt8(ascii: "\n") ? [UInt8(ascii: "\r"), $0] : [$0] })
        #expect(try connection.lines() == [Client.ok(1)])
        #expect(connection.isOpen)
    }

    /// 16383 bytes before the LF is the longest line (Dovecot's 16384-byte input buffer).
    @Test func theLongestLineIsServed() throws {
        let connection = try ready()
        defer { connection.finish() }
        let line = Client.authPlain(1, length: ProtocolLimits.maxLineLength + 1)
        #expect(line.utf8.count == 16384)
        try connection.send(line)
        #expect(try connection.lines() == [Client.ok(1)])
        #expect(connection.isOpen)
    }

    @Test func aLineOneByteLongerClosesTheConnection() throws {
        let connection = try ready()
        defer { connection.finish() }
        try connection.send(Client.authPlain(1, length: ProtocolLimits.maxLineLength + 2))
        #expect(!connection.isOpen)
        #expect(try connection.writes().isEmpty)
        #expect(connection.warnings.contains { $0.contains("protocol violation") })
    }

    /// The bound holds before the LF arrives: 16384 bytes without one are already too many.
    @Test func anOverlongLineClosesBeforeItsEnd() throws {
        let connection = try ready()
        defer { connection.finish() }
        try connection.send(String(repeating: "A", count: ProtocolLimits.maxLineLength))
        #expect(connection.isOpen)
        try connection.send("A")
        #expect(!connection.isOpen)
        #expect(connection.warnings.contains { $0.contains("protocol violation") })
    }

    // MARK: - A client that does not read

    /// While the client does not read its replies, no further line is taken and the socket is not read;
    /// once it catches up, what it sent meanwhile is answered, in order.
    @Test func aClientThatDoesNotReadIsNotReadEither() throws {
        let connection = try ready()
        defer { connection.finish() }
        connection.clientStopsReading()
        try connection.send(Client.authPlain(1) + Client.authPlain(2) + Client.authPlain(3))
        // The handler pauses as soon as the channel turns unwritable: nothing is answered meanwhile.
        let whilePaused = try connection.lines()
        #expect(whilePaused.isEmpty, "\(whilePaused)")
        #expect(!connection.readsSocket)
        try connection.send(Client.authPlain(4))
        #expect(try connection.lines().isEmpty)

        connection.clientCatchesUp()
        let afterwards = try connection.lines()
        #expect(whilePaused + afterwards == (1...4).map(Client.ok))
        #expect(connection.readsSocket)
        #expect(connection.isOpen)
    }

    /// Input that keeps arriving while paused is held up to two whole lines; at the cap the connection
    /// lives on and is served once the client reads.
    @Test func inputHeldWhilePausedUpToTheCapIsServedLater() throws {
        let connection = try ready()
        defer { connection.finish() }
        // The handler pauses the moment the client stops reading: everything that comes next is held.
        connection.clientStopsReading()
        let longest = ProtocolLimits.maxLineLength + 1
        #expect(ConnectionLimits.maxHeldInput == 2 * longest)
        try connection.send(Client.authPlain(2, length: longest) + Client.authPlain(3, length: longest))
        #expect(connection.isOpen)
        #expect(try connection.lines().isEmpty)

        connection.clientCatchesUp()
        #expect(try connection.lines() == [Client.ok(2), Client.ok(3)])
    }

    /// One byte past the cap closes the connection, and nothing it held is ever answered.
    @Test func inputPastTheCapClosesTheConnection() throws {
        let connection = try ready()
        defer { connection.finish() }
        connection.clientStopsReading()
        let longest = ProtocolLimits.maxLineLength + 1
        try connection.send(Client.authPlain(2, length: longest) + Client.authPlain(3, length: longest))
        try connection.send(Client.authPlain(4))
        #expect(!connection.isOpen)
        #expect(connection.warnings.contains { $0.contains("without reading its replies") })

        connection.clientCatchesUp()
        #expect(try connection.writes().isEmpty)
        #expect(connection.closedByHandler == 1)
    }

    // MARK: - Closing

    /// What follows a protocol violation in the same read, or arrives later, is never decoded; the reply
    /// to the request before it still goes out.
    @Test func nothingIsDecodedAfterTheConnectionCloses() throws {
        let connection = try ready()
        defer { connection.finish() }
        try connection.send(Client.authPlain(1) + "NOSUCHCOMMAND\t1\n" + Client.authPlain(2))
        #expect(!connection.isOpen)
        try connection.send(Client.authPlain(3))
        #expect(try connection.lines() == [Client.ok(1)])
        #expect(connection.closedByHandler == 1)
    }
}
