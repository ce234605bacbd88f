/// Parses one client line (without its LF; a trailing CR is removed) into a `ClientMessage`.
/// Pure: no state, no I/O. The handshake order is enforced by the caller.
public enum ClientMessageParser {
    static let tab = UInt8(ascii: "\t")

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
                let id = DecimalNumber.uint32(rest[rest.startIndex..<tabIndex])
            else { throw .brokenCont }
            return .cont(id: id, data: Array(rest[(tabIndex + 1)...]))
        case "CANCEL":
            guard hasArguments, let id = DecimalNumber.uint32(rest) else { throw .brokenCancel }
            return .cancel(id: id)
        case "VERSION":
            let fields = split(rest)
            guard hasArguments, fields.count == 2, let major = DecimalNumber.uint32(fields[0]),
                let minor = DecimalNumber.uint32(fields[1])
            else { throw .invalidVersionLine(preview(line)) }
            return .version(major: major, minor: minor)
        case "CPID":
            guard hasArguments, let pid = DecimalNumber.uint32(rest), pid != 0 else { throw .invalidCPID(preview(line)) }
            return .cpid(pid)
        default:
            throw .unknownCommand(preview(command))
        }
    }

    private static func parseAuth(_ rest: ArraySlice<UInt8>) throws(ProtocolViolation) -> AuthCommand {
        // Walks the TAB-separated fields in place (no array of fields): id, mechanism, parameters.
        var fields = FieldIterator(rest)
        let idField = fields.next()!
        guard let mechField = fields.next() else { throw .brokenAuth("no mechanism") }
        guard let id = DecimalNumber.uint32(idField), id != 0 else { throw .brokenAuth("bad id") }
        guard !mechField.isEmpty, mechField.count <= ProtocolLimits.maxMechanismNameLength else {
            throw .brokenAuth("bad mechanism name")
        }
        var command = AuthCommand(id: id, mechanism: String(decoding: unescaped(mechField), as: UTF8.self), service: "")
        var service: String?
        var count = 2
        while let rawField = fields.next() {
            count += 1
            guard count <= ProtocolLimits.maxAuthFields else { throw .brokenAuth("too many parameters") }
            let field = unescaped(rawField)
            let name: ArraySlice<UInt8>
            let value: ArraySlice<UInt8>
            if let eq = field.firstIndex(of: UInt8(ascii: "=")) {
                name = field[..<eq]
                value = field[(eq + 1)...]
            } else {
                name = field[...]
                value = []
            }
            switch Parameter(name) {
            case .resp:
                guard fields.atEnd else { throw .parametersAfterResp }
                command.rawInitialResponse = Array(value)
            case .service: service = String(decoding: value, as: UTF8.self)
            case .lip: command.localIP = nonEmptyString(value)
            case .rip: command.remoteIP = nonEmptyString(value)
            case .lport: command.localPort = nonEmptyString(value)
            case .rport: command.remotePort = nonEmptyString(value)
            case .session: command.session = nonEmptyString(value)
            case .secured: command.secured = true
            case .validClientCert: command.validClientCert = true
            case .noPenalty: command.noPenalty = true
            case .finalRespOK: command.finalResponseOK = true
            case .debug: command.debug = true
            case .unknown: break  // unknown parameters are ignored (§2.1)
            }
        }
        guard let service else { throw .missingService }
        command.service = service
        return command
    }

    /// The field with its 0x01 escapes undone; the field itself (no copy) when it has none.
    private static func unescaped(_ field: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        field.contains(0x01) ? TabEscape.unescape(field)[...] : field
    }

    private static func nonEmptyString(_ bytes: ArraySlice<UInt8>) -> String? {
        bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    /// Splits at raw TABs (an escaped TAB never splits).
    private static func split(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        bytes.split(separator: tab, omittingEmptySubsequences: false)
    }

    /// The AUTH parameters the server acts on, recognised from their bytes (no string is made for the
    /// name).
    enum Parameter {
        case resp, service, lip, rip, lport, rport, session, secured, validClientCert, noPenalty, finalRespOK, debug
        case unknown

        static let table: [(name: [UInt8], parameter: Parameter)] = [
            (Array("resp".utf8), .resp), (Array("service".utf8), .service), (Array("protocol".utf8), .service),
            (Array("lip".utf8), .lip), (Array("rip".utf8), .rip), (Array("lport".utf8), .lport),
            (Array("rport".utf8), .rport), (Array("session".utf8), .session), (Array("secured".utf8), .secured),
            (Array("valid-client-cert".utf8), .validClientCert), (Array("no-penalty".utf8), .noPenalty),
            (Array("final-resp-ok".utf8), .finalRespOK), (Array("debug".utf8), .debug),
        ]

        init(_ name: ArraySlice<UInt8>) {
            for entry in Self.table where entry.name.count == name.count && entry.name.elementsEqual(name) {
                self = entry.parameter
                return
            }
            self = .unknown
        }
    }

    /// The fields of a line between raw TABs, in order, empty ones included (as `split` with
    /// `omittingEmptySubsequences: false`).
    struct FieldIterator {
        let bytes: ArraySlice<UInt8>
        var position: Int
        var done = false

        init(_ bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            self.position = bytes.startIndex
        }

        /// No field left.
        var atEnd: Bool { done }

        mutating func next() -> ArraySlice<UInt8>? {
            guard !done else { return nil }
            let start = position
            var i = start
            while i < bytes.endIndex && bytes[i] != ClientMessageParser.tab { i += 1 }
            if i == bytes.endIndex {
                done = true
            } else {
                position = i + 1
            }
            return bytes[start..<i]
        }
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
