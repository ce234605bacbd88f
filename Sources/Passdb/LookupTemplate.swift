/// A query or filter text with Dovecot 2.3's request variables (`password_query`, `pass_filter`,
/// `auth_bind_userdn`). The template is parsed once, at configuration time, into literal text and
/// variables; a driver then decides how each value goes out: as a bound parameter (SQL) or escaped for
/// its syntax (LDAP filters and DNs). The password (`%w`) is never a variable.
///
/// Syntax: `%u %n %d %s %l %r`, the long forms `%{user}` `%{username}` `%{domain}` `%{service}`
/// `%{lip}` `%{rip}`, the case modifiers `%Lu`/`%Un` (also `%L{user}`), and `%%` for a percent sign.
public struct LookupTemplate: Sendable, Equatable, CustomStringConvertible {
    /// A request value a template may use.
    public enum Variable: String, Sendable, CaseIterable {
        /// `%u`: the normalized login name, `user@realm` (or a bare name).
        case user
        /// `%n`: the part before the `@`.
        case username
        /// `%d`: the realm, empty for a bare name.
        case domain
        /// `%s`: `service=` of the request (`smtp`).
        case service
        /// `%l`: `lip=`, empty when the client did not send it.
        case localIP = "lip"
        /// `%r`: `rip=`, empty when the client did not send it.
        case remoteIP = "rip"

        public var letter: Character {
            switch self {
            case .user: "u"
            case .username: "n"
            case .domain: "d"
            case .service: "s"
            case .localIP: "l"
            case .remoteIP: "r"
            }
        }

        init?(letter: Character) {
            guard let v = Variable.allCases.first(where: { $0.letter == letter }) else { return nil }
            self = v
        }

        /// The value for one request, as Dovecot gives it (an absent value is the empty string).
        public func value(in request: PassdbRequest) -> String {
            switch self {
            case .user: request.user
            case .username: request.localPart
            case .domain: request.realm ?? ""
            case .service: request.service
            case .localIP: request.localIP ?? ""
            case .remoteIP: request.remoteIP ?? ""
            }
        }
    }

    /// `%L` / `%U` before a variable.
    public enum CaseModifier: Sendable, Equatable {
        case lower, upper
    }

    /// A variable with its modifier.
    public struct Use: Sendable, Equatable {
        public var variable: Variable
        public var modifier: CaseModifier?

        public init(variable: Variable, modifier: CaseModifier?) {
            self.variable = variable
            self.modifier = modifier
        }

        /// The value for one request, modifier applied.
        public func value(in request: PassdbRequest) -> String {
            let v = variable.value(in: request)
            switch modifier {
            case nil: return v
            case .lower: return v.lowercased()
            case .upper: return v.uppercased()
            }
        }

        /// How it is written in Dovecot's long form, for messages and `--explain`.
        public var spelled: String {
            "%" + (modifier == .lower ? "L" : modifier == .upper ? "U" : "") + "{\(variable.rawValue)}"
        }
    }

    public enum Part: Sendable, Equatable {
        case literal(String)
        case variable(Use)
    }

    /// The template as written.
    public let text: String
    /// Literal runs are merged; `%%` is already a single `%` in them.
    public let parts: [Part]

    public var description: String { text }

    /// Every variable use in order of appearance (duplicates kept).
    public var uses: [Use] {
        parts.compactMap { if case .variable(let u) = $0 { u } else { nil } }
    }

    /// Parses `text`; the error says what is wrong and how to write it instead.
    public init(_ text: String) throws(LookupTemplateError) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var i = text.startIndex
        func flush() {
            if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
        }
        while i < text.endIndex {
            let c = text[i]
            guard c == "%" else {
                literal.append(c)
                i = text.index(after: i)
                continue
            }
            var j = text.index(after: i)
            guard j < text.endIndex else { throw LookupTemplateError("a lone '%' at the end; write '%%' for a percent sign") }
            if text[j] == "%" {
                literal.append("%")
                i = text.index(after: j)
                continue
            }
            var modifier: CaseModifier?
            if text[j] == "L" || text[j] == "U" {
                modifier = text[j] == "L" ? .lower : .upper
                j = text.index(after: j)
                guard j < text.endIndex else { throw LookupTemplateError("'%\(text[text.index(after: i)])' at the end needs a variable, e.g. %Lu") }
            }
            let variable: Variable
            if text[j] == "{" {
                guard let close = text[j...].firstIndex(of: "}") else {
                    throw LookupTemplateError("'%{' without a closing '}'")
                }
                let name = String(text[text.index(after: j)..<close])
                if name == "password" { throw Self.passwordRefused }
                guard let v = Variable(rawValue: name) else {
                    throw LookupTemplateError("unknown variable '%{\(name)}'; known: \(Self.known)")
                }
                variable = v
                j = close
            } else {
                if text[j] == "w" { throw Self.passwordRefused }
                guard let v = Variable(letter: text[j]) else {
                    throw LookupTemplateError("unknown variable '%\(text[j])'; known: \(Self.known); write '%%' for a percent sign")
                }
                variable = v
            }
            flush()
            parts.append(.variable(Use(variable: variable, modifier: modifier)))
            i = text.index(after: j)
        }
        flush()
        self.parts = parts
    }

    /// The text with every variable replaced by `encode(value)` (e.g. an escaping function).
    public func render(_ request: PassdbRequest, encode: (String) -> String) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .variable(let use): out += encode(use.value(in: request))
            }
        }
        return out
    }

    static let known = Variable.allCases.map { "%\($0.letter) (%{\($0.rawValue)})" }.joined(separator: ", ")
    static let passwordRefused = LookupTemplateError(
        "the password (%w, %{password}) cannot be used in a lookup: saslgate never sends it to the database; "
            + "select the stored password and let saslgate verify it (or use auth_bind with LDAP)")
}

/// Why a template was refused, in words for a `file:line` message.
public struct LookupTemplateError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}
