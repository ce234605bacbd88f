/// A reply line (`OK`, `FAIL`, `CONT`, docs/PROTOCOL.md §2.3–2.6) located in the bytes it arrived in. Nothing
/// is copied, so a client that reads many replies (the load generator) pays no allocation per line.
public struct ServerReply: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case ok, fail, cont }

    public var kind: Kind
    public var id: UInt32
    /// Where the rest of the line starts: the first field of OK/FAIL (the line's count when there is
    /// none), or the base64 data of CONT.
    public var restStart: Int

    /// The reply in `line` (without its LF); nil for any other line and for a reply whose id is not 1 to
    /// 2^32-1. CONT needs its data field, even empty (`CONT\t<id>\t`): Postfix refuses one without.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) -> ServerReply? {
        // Byte by byte rather than through slices: the load generator reads 100k+ replies a second.
        let n = line.count
        let kind: Kind
        let idStart: Int
        if n > 3, line[0] == 0x4F, line[1] == 0x4B, line[2] == tab {  // OK
            (kind, idStart) = (.ok, 3)
        } else if n > 5, line[4] == tab, line[0] == 0x46, line[1] == 0x41, line[2] == 0x49, line[3] == 0x4C {  // FAIL
            (kind, idStart) = (.fail, 5)
        } else if n > 5, line[4] == tab, line[0] == 0x43, line[1] == 0x4F, line[2] == 0x4E, line[3] == 0x54 {  // CONT
            (kind, idStart) = (.cont, 5)
        } else {
            return nil
        }
        var id: UInt64 = 0
        var i = idStart
        while i < n && line[i] != tab {
            let digit = line[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            id = id * 10 + UInt64(digit)
            guard id <= UInt64(UInt32.max) else { return nil }
            i += 1
        }
        guard i > idStart, id != 0 else { return nil }
        if i == n {
            guard kind != .cont else { return nil }
            return ServerReply(kind: kind, id: UInt32(id), restStart: n)
        }
        return ServerReply(kind: kind, id: UInt32(id), restStart: i + 1)
    }

    /// For OK and FAIL: the value of the first field when it is `user=` (always so for OK, §2.5), as a
    /// range of `line`, still escaped.
    public func leadingUser(in line: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let f = restStart
        guard kind != .cont, f + 5 <= line.count, line[f] == 0x75, line[f + 1] == 0x73, line[f + 2] == 0x65,
            line[f + 3] == 0x72, line[f + 4] == 0x3D  // user=
        else { return nil }
        var end = f + 5
        while end < line.count && line[end] != Self.tab { end += 1 }
        return (f + 5)..<end
    }

    static let tab = UInt8(ascii: "\t")
}

/// One `name=value` field of OK or FAIL, unescaped; a bare flag (`nologin`) has no value.
public struct ServerField: Equatable, Sendable {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }
}

extension Array where Element == ServerField {
    /// The value of the first field called `name`; "" for a bare flag; nil when absent.
    public func value(_ name: String) -> String? {
        first { $0.name == name }.map { $0.value ?? "" }
    }
}

/// A server line that does not have its command's format. The description shows a short, printable
/// excerpt, safe for a terminal or a log.
public struct MalformedServerLine: Error, Equatable, CustomStringConvertible {
    public var description: String
}

/// A line from the server as a client reads it: the greeting (§1.2) and the replies (§2.3–2.6).
public enum ServerLine: Equatable, Sendable {
    case version(major: UInt32, minor: UInt32)
    /// A mechanism as the server spells it, with its flags (`plaintext`, `mutual-auth`, ...).
    case mech(name: String, flags: [String])
    case spid(String)
    case cuid(String)
    case cookie(String)
    case done
    case ok(id: UInt32, fields: [ServerField])
    case fail(id: UInt32, fields: [ServerField])
    /// The challenge as the server sent it (base64; decode it with `DovecotBase64`).
    case cont(id: UInt32, base64: [UInt8])
    /// A command this codec does not know (a newer server's, e.g. `CANCELLED`): clients skip it, as
    /// Postfix does.
    case other(command: String)

    /// The line's command word (`OK`, `MECH`, ...).
    public var command: String {
        switch self {
        case .version: "VERSION"
        case .mech: "MECH"
        case .spid: "SPID"
        case .cuid: "CUID"
        case .cookie: "COOKIE"
        case .done: "DONE"
        case .ok: "OK"
        case .fail: "FAIL"
        case .cont: "CONT"
        case .other(let command): command
        }
    }

    /// Parses one line without its LF (a trailing CR is dropped). Throws when a known command is
    /// broken: a VERSION without two numbers, a reply without a valid id, a CONT without its data.
    public static func parse(_ line: [UInt8]) throws(MalformedServerLine) -> ServerLine {
        try line.withUnsafeBufferPointer { result($0) }.get()
    }

    /// The same for a line in a reader's buffer.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) throws(MalformedServerLine) -> ServerLine {
        try result(line).get()
    }

    private static func result(_ raw: UnsafeBufferPointer<UInt8>) -> Result<ServerLine, MalformedServerLine> {
        let line = raw.last == UInt8(ascii: "\r") ? UnsafeBufferPointer(rebasing: raw.dropLast()) : raw
        if let reply = ServerReply.parse(line) {
            let rest = UnsafeBufferPointer(rebasing: line[reply.restStart...])
            switch reply.kind {
            case .cont: return .success(.cont(id: reply.id, base64: Array(rest)))
            case .ok: return .success(.ok(id: reply.id, fields: fields(rest)))
            case .fail: return .success(.fail(id: reply.id, fields: fields(rest)))
            }
        }
        let parts = line.split(separator: ServerReply.tab, omittingEmptySubsequences: false)
        let command = String(decoding: parts[0], as: UTF8.self)
        func text(_ i: Int) -> String { i < parts.count ? String(decoding: TabEscape.unescape(parts[i]), as: UTF8.self) : "" }
        switch command {
        case "VERSION":
            guard parts.count >= 3, let major = DecimalNumber.uint32(parts[1]), let minor = DecimalNumber.uint32(parts[2])
            else { return .failure(malformed(line)) }
            return .success(.version(major: major, minor: minor))
        case "MECH":
            return .success(.mech(name: text(1), flags: (2..<max(parts.count, 2)).map(text)))
        case "SPID": return .success(.spid(text(1)))
        case "CUID": return .success(.cuid(text(1)))
        case "COOKIE": return .success(.cookie(text(1)))
        case "DONE": return .success(.done)
        case "OK", "FAIL", "CONT": return .failure(malformed(line))
        default: return .success(.other(command: command))
        }
    }

    /// The TAB-separated `name=value` fields of OK/FAIL, each unescaped, split at its first `=`.
    private static func fields(_ rest: UnsafeBufferPointer<UInt8>) -> [ServerField] {
        guard !rest.isEmpty else { return [] }
        return rest.split(separator: ServerReply.tab, omittingEmptySubsequences: false).map { raw in
            let field = TabEscape.unescape(raw)
            guard let eq = field.firstIndex(of: UInt8(ascii: "=")) else {
                return ServerField(String(decoding: field, as: UTF8.self))
            }
            return ServerField(
                String(decoding: field[..<eq], as: UTF8.self), String(decoding: field[(eq + 1)...], as: UTF8.self))
        }
    }

    private static func malformed(_ line: UnsafeBufferPointer<UInt8>) -> MalformedServerLine {
        MalformedServerLine(description: "malformed line from the server: \(ClientMessageParser.preview(line))")
    }
}

/// The greeting as a client collects it, line by line up to DONE (§1.2). It keeps what the lines say and
/// the order facts clients check; what to refuse is the client's choice (Postfix, Exim and Dovecot's
/// own client differ).
public struct ServerGreeting: Equatable, Sendable {
    /// A mechanism of a MECH line: the name upper-cased (names compare case-insensitively, §2.1) and
    /// its flags as sent.
    public struct Mechanism: Equatable, Sendable {
        public var name: String
        public var flags: [String]
    }

    /// From the first VERSION line; nil until there is one.
    public private(set) var major: UInt32?
    public private(set) var minor: UInt32?
    /// MECH lines in order; one with an empty name is skipped.
    public private(set) var mechanisms: [Mechanism] = []
    public private(set) var spid: String?
    public private(set) var cuid: String?
    public private(set) var cookie: String?
    /// The first line was VERSION (Postfix and Dovecot's client require it).
    public private(set) var versionCameFirst = false
    /// SPID came before any MECH: the auth-master socket's greeting, not auth-client's (§1.2).
    public private(set) var spidBeforeMechanism = false
    /// DONE was seen; later lines are not part of the greeting.
    public private(set) var isComplete = false

    private var lines = 0

    public init() {}

    /// Takes the next line. Replies and unknown commands change nothing.
    public mutating func add(_ line: ServerLine) {
        guard !isComplete else { return }
        lines += 1
        switch line {
        case .version(let major, let minor):
            if lines == 1 { versionCameFirst = true }
            if self.major == nil { (self.major, self.minor) = (major, minor) }
        case .mech(let name, let flags):
            if !name.isEmpty { mechanisms.append(Mechanism(name: name.uppercased(), flags: flags)) }
        case .spid(let value):
            if mechanisms.isEmpty { spidBeforeMechanism = true }
            spid = value
        case .cuid(let value): cuid = value
        case .cookie(let value): cookie = value
        case .done: isComplete = true
        case .ok, .fail, .cont, .other: break
        }
    }

    /// Upper-case names of the mechanisms offered.
    public var mechanismNames: [String] { mechanisms.map(\.name) }
}
