import AuthProtocol
@testable import AuthEngine
import Testing

/// The client's half of the handshake: VERSION (major 1), then CPID, then only AUTH, CONT, CANCEL.
@Suite struct ClientHandshakeTests {
    static let auth = AuthCommand(id: 1, mechanism: "PLAIN", service: "smtp")

    @Test func versionThenCPIDThenRequests() throws {
        var h = ClientHandshake()
        #expect(h.state == .awaitingVersion)
        #expect(try h.accept(.version(major: 1, minor: 2)) == nil)
        #expect(h.state == .awaitingCPID)
        #expect(h.clientMinor == 2)
        #expect(h.clientPID == nil)
        #expect(!h.isComplete)
        #expect(try h.accept(.cpid(4583)) == nil)
        #expect(h.isComplete)
        #expect(h.clientPID == 4583)
        #expect(try h.accept(.auth(Self.auth)) == .auth(Self.auth))
        #expect(try h.accept(.cont(id: 1, data: Array("AAAA".utf8))) == .cont(id: 1, data: Array("AAAA".utf8)))
        #expect(try h.accept(.cancel(id: 1)) == .cancel(id: 1))
    }

    /// Postfix and Exim announce minor 0: it is what makes an empty `resp=` mean "no initial response".
    @Test func minorZeroIsKept() throws {
        var h = ClientHandshake()
        _ = try h.accept(.version(major: 1, minor: 0))
        _ = try h.accept(.cpid(1))
        #expect(h.clientMinor == 0)
    }

    @Test func anotherMajorVersionIsRefused() {
        var h = ClientHandshake()
        #expect(throws: ProtocolViolation.incompatibleMajor(2)) { try h.accept(.version(major: 2, minor: 0)) }
    }

    @Test func anythingBeforeVersionIsRefused() {
        for message in [ClientMessage.cpid(7), .auth(Self.auth), .cont(id: 3, data: []), .cancel(id: 3)] {
            var h = ClientHandshake()
            #expect(throws: ProtocolViolation.self) { try h.accept(message) }
        }
        var h = ClientHandshake()
        #expect(throws: ProtocolViolation.invalidVersionLine("CPID 7")) { try h.accept(.cpid(7)) }
    }

    @Test func onlyCPIDMayFollowVersion() throws {
        var h = ClientHandshake()
        _ = try h.accept(.version(major: 1, minor: 0))
        #expect(throws: ProtocolViolation.unknownHandshakeCommand("AUTH 1")) { try h.accept(.auth(Self.auth)) }
        var again = ClientHandshake()
        _ = try again.accept(.version(major: 1, minor: 0))
        #expect(throws: ProtocolViolation.unknownHandshakeCommand("VERSION 1 0")) {
            try again.accept(.version(major: 1, minor: 0))
        }
    }

    @Test func noSecondHandshakeAfterTheFirst() throws {
        var h = ClientHandshake()
        _ = try h.accept(.version(major: 1, minor: 0))
        _ = try h.accept(.cpid(9))
        #expect(throws: ProtocolViolation.unknownCommand("VERSION 1 2")) { try h.accept(.version(major: 1, minor: 2)) }
        #expect(throws: ProtocolViolation.unknownCommand("CPID 10")) { try h.accept(.cpid(10)) }
        #expect(h.clientPID == 9)
    }

    /// A violation names the command and its numbers only: never the client's data.
    @Test func summariesCarryNoPayload() {
        var command = Self.auth
        command.rawInitialResponse = Array("AHRlc3QAdGVzdHBhc3M=".utf8)
        #expect(ClientMessage.auth(command).summary == "AUTH 1")
        #expect(ClientMessage.cont(id: 4, data: Array("c2VjcmV0".utf8)).summary == "CONT 4")
    }
}
