/// Parses one client line (without its LF; a trailing CR is removed) into a `ClientMessage`.
/// Pure: no state, no I/O. The handshake order is enforced by the caller.
public enum ClientMessageParser {
    private static let tab = UInt8(ascii: "\t")

    public static func parse(_ bytes: [UInt8]) throws(ProtocolViolation) -> ClientMessage {
        try parse(bytes[...])
    }

    public static func parse(_ rawLine: ArraySlice<UInt8>) throws(ProtocolViolation) -> ClientMessage {
        var line = rawLine
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.isEmpty { throw .emptyLine }
        if line.count > ProtocolLimits.maxLineLength { throw .lineTooLong }
        if line.contains(0) { throw .nulByte }

        let commandEnd = line.firstIndex(of: tab) ?? line.endIndex
        let command = line[line.startIndex..<commandEnd]
        let rest = commandEnd == line.endIndex ? line[line.endIndex...] : line[(commandEnd + 1)...]
        let hasArguments = commandEnd != line.endIndex

        switch String(decoding: command, as: UTF8.self) {
        case "AUTH":
            guard hasArguments else { throw .brokenAuth("no id") }
            return .auth(try parseAuth(rest))
        case "CONT":
            // `CONT id data`: the id, a TAB, then the raw rest (may be empty).
            guard hasArguments, let tabIndex = rest.firstIndex(of: tab),
                let id = parseID(rest[rest.startIndex..<tabIndex])
            else { throw .brokenCont }
            return .cont(id: id, data: Array(rest[(tabIndex + 1)...]))
        case "CANCEL":
            guard hasArguments, let id = parseID(rest) else { throw .brokenCancel }
            return .cancel(id: id)
        case "VERSION":
            let fields = split(rest)
            guard hasArguments, fields.count == 2, let major = parseUInt32(fields[0]),
                let minor = parseUInt32(fields[1])
            else { throw .invalidVersionLine(preview(line)) }
            return .version(major: major, minor: minor)
        case "CPID":
            guard hasArguments, let pid = parseUInt32(rest), pid != 0 else { throw .invalidCPID(preview(line)) }
            return .cpid(pid)
        default:
            throw .unknownCommand(preview(command))
        }
    }

    private static func parseAuth(_ rest: ArraySlice<UInt8>) throws(ProtocolViolation) -> AuthCommand {
        let fields = split(rest)
        guard fields.count >= 2 else { throw .brokenAuth("no mechanism") }
        guard fields.count <= ProtocolLimits.maxAuthFields else { throw .brokenAuth("too many parameters") }
        guard let id = parseUInt32(fields[0]), id != 0 else { throw .brokenAuth("bad id") }
        let mechField = fields[1]
        guard !mechField.isEmpty, mechField.count <= ProtocolLimits.maxMechanismNameLength else {
            throw .brokenAuth("bad mechanism name")
        }
        var command = AuthCommand(id: id, mechanism: String(decoding: TabEscape.unescape(mechField), as: UTF8.self), service: "")
        var service: String?
        var index = 2
        while index < fields.count {
            let field = TabEscape.unescape(fields[index])
            index += 1
            let name: ArraySlice<UInt8>
            let value: [UInt8]
            if let eq = field.firstIndex(of: UInt8(ascii: "=")) {
                name = field[..<eq]
                value = Array(field[(eq + 1)...])
            } else {
                name = field[...]
                value = []
            }
            switch String(decoding: name, as: UTF8.self) {
            case "resp":
                guard index == fields.count else { throw .parametersAfterResp }
                command.rawInitialResponse = value
            case "service", "protocol": service = String(decoding: value, as: UTF8.self)
            case "lip": command.localIP = nonEmptyString(value)
            case "rip": command.remoteIP = nonEmptyString(value)
            case "lport": command.localPort = nonEmptyString(value)
            case "rport": command.remotePort = nonEmptyString(value)
            case "session": command.session = nonEmptyString(value)
            case "secured": command.secured = true
            case "valid-client-cert": command.validClientCert = true
            case "no-penalty": command.noPenalty = true
            case "final-resp-ok": command.finalResponseOK = true
            case "debug": command.debug = true
            default: break  // unknown parameters are ignored (§2.1)
            }
        }
        guard let service else { throw .missingService }
        command.service = service
        return command
    }

    private static func nonEmptyString(_ bytes: [UInt8]) -> String? {
        bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    /// Splits at raw TABs (an escaped TAB never splits).
    private static func split(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        bytes.split(separator: tab, omittingEmptySubsequences: false)
    }

    static func parseID(_ bytes: ArraySlice<UInt8>) -> UInt32? { parseUInt32(bytes) }

    /// Decimal digits only, at most UInt32.max; leading zeros accepted (`007` is 7).
    static func parseUInt32(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(b - UInt8(ascii: "0"))
            if value > UInt64(UInt32.max) { return nil }
        }
        return UInt32(value)
    }

    /// A short, printable excerpt of client text for a log line.
    static func preview<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = ""
        for (n, b) in bytes.enumerated() {
            if n == 40 { out += "..."; break }
            out.unicodeScalars.append(b >= 0x20 && b < 0x7F ? Unicode.Scalar(b) : "?")
        }
        return out
    }
}
