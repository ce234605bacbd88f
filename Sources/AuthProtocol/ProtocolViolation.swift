/// A client broke the wire protocol. The connection is logged and closed; nothing is sent back.
/// Every description is safe to log: no payloads, client text sanitized and cut short.
public enum ProtocolViolation: Error, Equatable, CustomStringConvertible {
    case lineTooLong
    case emptyLine
    case nulByte
    case invalidVersionLine(String)
    case incompatibleMajor(UInt32)
    case invalidCPID(String)
    case unknownHandshakeCommand(String)
    case unknownCommand(String)
    case brokenAuth(String)
    case unknownMechanism(String)
    case parametersAfterResp
    case missingService
    case duplicateID(UInt32)
    case brokenCont
    case brokenCancel

    public var description: String {
        switch self {
        case .lineTooLong: "sent a line longer than \(ProtocolLimits.maxLineLength) bytes"
        case .emptyLine: "sent an empty line"
        case .nulByte: "sent a NUL byte"
        case .invalidVersionLine(let line): "sent an invalid VERSION line: \(line)"
        case .incompatibleMajor(let major): "speaks protocol major version \(major), not 1"
        case .invalidCPID(let line): "sent an invalid CPID line: \(line)"
        case .unknownHandshakeCommand(let cmd): "sent unknown handshake command: \(cmd)"
        case .unknownCommand(let cmd): "sent unknown command: \(cmd)"
        case .brokenAuth(let why): "sent a broken AUTH request: \(why)"
        case .unknownMechanism(let mech): "requested unsupported mechanism \(mech)"
        case .parametersAfterResp: "sent AUTH parameters after 'resp'"
        case .missingService: "didn't specify service in AUTH request"
        case .duplicateID(let id): "sent a duplicate request id \(id)"
        case .brokenCont: "sent a broken CONT request"
        case .brokenCancel: "sent a broken CANCEL request"
        }
    }
}
