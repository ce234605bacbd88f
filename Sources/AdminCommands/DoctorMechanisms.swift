import AuthProtocol
import SASL

/// The SASL mechanisms the daemon advertises, and which of them survive Postfix's filters.
///
/// Postfix (`xsasl_dovecot_server.c`) builds the EHLO `AUTH` list from the daemon's `MECH` lines:
/// mechanisms flagged `private` are dropped, then `smtpd_sasl_security_options` (before TLS) or
/// `smtpd_sasl_tls_security_options` (after STARTTLS) remove mechanisms by their flags, then
/// `smtpd_sasl_mechanism_filter` removes mechanisms by name. An empty result kills the smtpd process:
/// `fatal: no SASL authentication mechanisms` (or `... discards all mechanisms`).

/// One mechanism as the daemon advertises it: `MECH\tNAME\tflag...` (Dovecot flag names, lower case).
public struct DoctorMechanism: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var flags: Set<String>

    public init(name: String, flags: Set<String>) {
        self.name = name.uppercased()
        self.flags = Set(flags.map { $0.lowercased() })
    }

    /// The flags each mechanism is advertised with: saslgate's own mechanisms as the daemon's registry
    /// declares them, and the Dovecot mechanisms saslgate does not implement as Dovecot gives them
    /// (`src/auth/mech-*.c`), for a socket or a check that names them.
    public static let knownFlags: [String: Set<String>] = {
        var table: [String: Set<String>] = [
            "EXTERNAL": [],
            "APOP": ["private", "dictionary", "active"],
            "OAUTHBEARER": ["plaintext"],
            "XOAUTH2": ["plaintext"],
        ]
        for mechanism in MechanismRegistry.all { table[mechanism.name] = Set(mechanism.flags.words) }
        return table
    }()

    /// The mechanism with the flags the daemon would send (when it could not be asked).
    public static func predicted(_ name: String) -> DoctorMechanism {
        DoctorMechanism(name: name, flags: knownFlags[name.uppercased()] ?? [])
    }

    /// Every flag word, in Dovecot's fixed order.
    static let flagOrder = MechanismFlags(rawValue: .max).words

    /// `PLAIN(plaintext)`, `SCRAM-SHA-256(mutual-auth)`, `EXTERNAL`.
    public var description: String {
        let ordered =
            DoctorMechanism.flagOrder.filter { flags.contains($0) }
            + flags.subtracting(DoctorMechanism.flagOrder).sorted()
        return ordered.isEmpty ? name : "\(name)(\(ordered.joined(separator: ",")))"
    }

    public var isPlaintext: Bool { flags.contains("plaintext") }
}

/// The greeting of an auth-client socket: `VERSION`, `MECH`..., `SPID`, `CUID`, `COOKIE`, `DONE`.
public struct DoctorGreeting: Sendable, Equatable {
    public var major: Int
    public var minor: Int
    public var mechanisms: [DoctorMechanism]

    public init(major: Int, minor: Int, mechanisms: [DoctorMechanism]) {
        self.major = major
        self.minor = minor
        self.mechanisms = mechanisms
    }

    /// Checks the lines (each split at TABs, fields unescaped) the way Postfix does; the error says
    /// what Postfix would log.
    public static func parse(_ lines: [[String]]) -> Result<DoctorGreeting, DoctorGreetingError> {
        var greeting = ServerGreeting()
        for (n, fields) in lines.enumerated() {
            var raw: [UInt8] = []
            for (i, field) in fields.enumerated() {
                if i > 0 { raw.append(UInt8(ascii: "\t")) }
                TabEscape.escape(field.utf8, into: &raw)
            }
            let line: ServerLine
            do throws(MalformedServerLine) {
                line = try ServerLine.parse(raw)
            } catch {
                // Postfix reads past lines it cannot use, except a broken first line.
                guard n == 0 else { continue }
                if fields.first == "VERSION" {
                    return .failure(.init("malformed VERSION line (Postfix: 'SASL: Protocol version error')"))
                }
                return .failure(.init("the first line is not VERSION (Postfix: 'SASL: Protocol version error')"))
            }
            greeting.add(line)
            if n == 0 {
                guard greeting.versionCameFirst, let major = greeting.major else {
                    return .failure(.init("the first line is not VERSION (Postfix: 'SASL: Protocol version error')"))
                }
                guard major == ProtocolLimits.majorVersion else {
                    return .failure(
                        .init("protocol major version \(major), not 1 (Postfix: 'SASL: Protocol version mismatch')"))
                }
            }
            if greeting.spidBeforeMechanism {
                return .failure(.init("SPID before any MECH: this is an auth-master socket, not auth-client"))
            }
            if greeting.isComplete { break }
        }
        guard let major = greeting.major, let minor = greeting.minor else {
            return .failure(.init("the first line is not VERSION (Postfix: 'SASL: Protocol version error')"))
        }
        guard greeting.isComplete else { return .failure(.init("the greeting ended before DONE")) }
        return .success(
            DoctorGreeting(
                major: Int(major), minor: Int(minor),
                mechanisms: greeting.mechanisms.map { DoctorMechanism(name: $0.name, flags: Set($0.flags)) }))
    }
}

public struct DoctorGreetingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `smtpd_sasl_security_options` / `smtpd_sasl_tls_security_options` as Postfix's Dovecot client reads
/// them (`xsasl_dovecot_conf_sec_props`): an unknown word is fatal for smtpd.
public struct PostfixSASLSecurityOptions: Sendable, Equatable, CustomStringConvertible {
    /// Option word → the mechanism flag it forbids.
    static let negative: [String: String] = [
        "noplaintext": "plaintext", "noactive": "active", "nodictionary": "dictionary", "noanonymous": "anonymous",
    ]
    /// Option word → the mechanism flag it requires.
    static let positive: [String: String] = ["mutual_auth": "mutual-auth", "forward_secrecy": "forward-secrecy"]

    public var words: [String]
    public var unknown: [String]

    public init(_ value: String) {
        words = doctorWords(value).map { $0.lowercased() }
        unknown = words.filter {
            PostfixSASLSecurityOptions.negative[$0] == nil && PostfixSASLSecurityOptions.positive[$0] == nil
        }
    }

    public var description: String { words.isEmpty ? "(empty)" : words.joined(separator: ", ") }

    /// Nil when Postfix keeps `mechanism`, else why it drops it. `private` mechanisms are never offered.
    public func rejection(of mechanism: DoctorMechanism) -> String? {
        if mechanism.flags.contains("private") { return "private" }
        for word in words {
            if let flag = PostfixSASLSecurityOptions.negative[word], mechanism.flags.contains(flag) {
                return "\(word) drops \(flag)"
            }
            if let flag = PostfixSASLSecurityOptions.positive[word], !mechanism.flags.contains(flag) {
                return "\(word) needs \(flag)"
            }
        }
        return nil
    }

    public func filter(_ mechanisms: [DoctorMechanism]) -> [DoctorMechanism] {
        mechanisms.filter { rejection(of: $0) == nil }
    }
}

/// `smtpd_sasl_mechanism_filter` (Postfix ≥ 3.6; default `!external, static:rest`): a Postfix
/// string list, matched case-insensitively; the first matching item decides, `!` negates, no match
/// drops the mechanism. `static:…` matches everything; other tables and `/file` patterns cannot be
/// evaluated here and are assumed never to drop a mechanism.
public struct PostfixMechanismFilter: Sendable, Equatable {
    enum Pattern: Sendable, Equatable {
        case name(String)
        case everything
        case unevaluable(String)
    }

    struct Item: Sendable, Equatable {
        var negated: Bool
        var pattern: Pattern
    }

    var items: [Item]
    /// Parameter unknown to this Postfix (older than 3.6): no filtering at all.
    var absent: Bool

    public static let postfixDefault = "!external, static:rest"

    /// `value` nil: the parameter does not exist (Postfix < 3.6).
    public init(_ value: String?) {
        absent = value == nil
        items = doctorWords(value ?? "").map { word in
            var rest = Substring(word)
            var negated = false
            while rest.hasPrefix("!") {
                negated.toggle()
                rest = rest.dropFirst()
            }
            let text = String(rest)
            if text.lowercased().hasPrefix("static:") { return Item(negated: negated, pattern: .everything) }
            if text.hasPrefix("/") || text.contains(":") { return Item(negated: negated, pattern: .unevaluable(text)) }
            return Item(negated: negated, pattern: .name(text.uppercased()))
        }
    }

    /// Tables and files the filter uses that this check cannot look into.
    public var unevaluable: [String] {
        items.compactMap { if case .unevaluable(let t) = $0.pattern { return t } else { return nil } }
    }

    public func keeps(_ mechanism: String) -> Bool {
        if absent { return true }
        let name = mechanism.uppercased()
        for item in items {
            switch item.pattern {
            case .name(let n) where n == name: return !item.negated
            case .name: continue
            case .everything: return !item.negated
            case .unevaluable:
                // Optimistic, so that a table never causes a false FAIL: a table that lists the
                // mechanism keeps it; a negated table is assumed not to list it.
                if item.negated { continue }
                return true
            }
        }
        return false
    }

    public func filter(_ mechanisms: [DoctorMechanism]) -> [DoctorMechanism] {
        mechanisms.filter { keeps($0.name) }
    }
}

/// Postfix list syntax: words separated by commas and white space.
func doctorWords(_ value: String) -> [String] {
    value.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).map(String.init)
}
