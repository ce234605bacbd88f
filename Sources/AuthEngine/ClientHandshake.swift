import AuthProtocol

/// The client's half of the handshake (docs/PROTOCOL.md, "Handshake"): `VERSION` with major 1 first,
/// then `CPID`, then only requests. Anything out of this order is a violation that closes the
/// connection; the server's greeting has already gone out on accept and does not depend on it.
struct ClientHandshake {
    enum State: Equatable { case awaitingVersion, awaitingCPID, ready }

    /// What a client may send once the handshake is done.
    enum RequestCommand: Equatable {
        case auth(AuthCommand)
        case cont(id: UInt32, data: [UInt8])
        case cancel(id: UInt32)
    }

    private(set) var state = State.awaitingVersion
    /// The minor version the client announced: it decides what an empty `resp=` means
    /// (docs/PROTOCOL.md, "AUTH").
    private(set) var clientMinor: UInt32 = 0
    /// The client's process id, once `CPID` completed the handshake.
    private(set) var clientPID: UInt32?

    var isComplete: Bool { state == .ready }

    /// Takes one client line. Returns the request command to carry out, or nil when the line was a
    /// step of the handshake.
    mutating func accept(_ message: ClientMessage) throws(ProtocolViolation) -> RequestCommand? {
        switch (state, message) {
        case (.awaitingVersion, .version(let major, let minor)):
            guard major == ProtocolLimits.majorVersion else { throw .incompatibleMajor(major) }
            clientMinor = minor
            state = .awaitingCPID
            return nil
        case (.awaitingVersion, _):
            throw .invalidVersionLine(message.summary)
        case (.awaitingCPID, .cpid(let pid)):
            clientPID = pid
            state = .ready
            return nil
        case (.awaitingCPID, _):
            throw .unknownHandshakeCommand(message.summary)
        case (.ready, .auth(let command)): return .auth(command)
        case (.ready, .cont(let id, let data)): return .cont(id: id, data: data)
        case (.ready, .cancel(let id)): return .cancel(id: id)
        case (.ready, .version), (.ready, .cpid):
            throw .unknownCommand(message.summary)
        }
    }
}

extension ClientMessage {
    /// The command and its numbers, for the violation message: never a payload.
    var summary: String {
        switch self {
        case .version(let a, let b): "VERSION \(a) \(b)"
        case .cpid(let p): "CPID \(p)"
        case .auth(let c): "AUTH \(c.id)"
        case .cont(let id, _): "CONT \(id)"
        case .cancel(let id): "CANCEL \(id)"
        }
    }
}
