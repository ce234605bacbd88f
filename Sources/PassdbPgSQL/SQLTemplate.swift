public import Passdb

/// A `password_query` turned into SQL text with positional parameters (`$1`, `$2`, ...) and the request
/// values that go into them. No request value is ever spliced into the SQL text: every variable becomes
/// a parameter bound as text, so no user name can change the statement, whatever `username_chars` allows.
///
/// The translation reads the SQL as PostgreSQL's lexer does (string literals with `''`, quoted
/// identifiers, `--` and nested `/* */` comments, dollar-quoted strings):
/// - a bare variable (`uid = %n`) becomes `$k`;
/// - a quoted literal holding exactly one variable (`'%n'`) becomes `$k`;
/// - a quoted literal mixing text and variables (`'%n@%d'`) becomes a concatenation,
///   `($1 || '@' || $2)`;
/// - a variable inside a quoted identifier, an escape string (`E'...'`), a dollar-quoted string or a
///   comment is refused, as is a `$n` written in the template (the numbering is saslgate's).
/// The same variable (with the same case modifier) used twice is one parameter.
public struct SQLTemplate: Sendable, Equatable {
    /// The SQL sent to the server, with `$1`... for the variables.
    public let sql: String
    /// What each parameter holds: `parameters[0]` is `$1`.
    public let parameters: [LookupTemplate.Use]

    /// Whether the query can run in its batch form (see `batchSQL(parameterTypes:)`): not without a
    /// variable (every request would get the same rows), and not when its text names the batch form's
    /// own aliases or uses a Unicode-escaped identifier (`U&"..."`, which could spell them): a table of
    /// that name would stand where the batch form means the request's values.
    public let batchable: Bool

    /// The template, for the batch form (rendered once the parameter types are known).
    private let template: LookupTemplate

    /// The column of the batch form's result that says which request (1, 2, ... in the order of the
    /// array elements) a row answers, as text; it is always the first column, and is read there.
    public static let batchIndexColumn = "saslgate_batch_index"

    /// The names the batch form gives its parts.
    static let batchNames = ["saslgate_batch", "saslgate_q", "u&\""]

    /// Translates `template`; the error says what is wrong and how to write it instead.
    public init(_ template: LookupTemplate) throws(SQLTemplateError) {
        let single = try Self.translate(template) { "$\($0)" }
        sql = single.out
        parameters = single.parameters
        self.template = template
        let text = template.text.lowercased()
        batchable = !parameters.isEmpty && !Self.batchNames.contains { text.contains($0) }
    }

    /// The query run once for several requests: each parameter is an array (`$k::text[]`, element i for
    /// request i), unnested with its ordinal, and the query, with the element's value where it had `$k`,
    /// runs as a LATERAL subquery for each element. Every row carries its request's ordinal in
    /// `batchIndexColumn`, the first column. The values are still bound, never spliced.
    ///
    /// `parameterTypes` are the types PostgreSQL gave `$1`, `$2`, ... when it prepared `sql`, as
    /// `format_type` writes them (nil: text, no cast): each element is cast to its parameter's type, so
    /// every comparison is the one the plain query makes (a `citext` column compares without case, an
    /// enum compares as the enum) and uses the same indexes. The caller leaves out types a cast would
    /// change (domains, `name`). nil when the query is not `batchable`, a type is missing, or a type
    /// name is not one PostgreSQL writes unquoted (letters, digits, `_`, `.`, spaces, `[]`).
    ///
    /// A trailing `;` is dropped, and the query stands on lines of its own (a trailing `-- comment` ends
    /// before the closing parenthesis).
    public func batchSQL(parameterTypes: [String?]) -> String? {
        guard batchable, parameterTypes.count == parameters.count else { return nil }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_. []")
        guard parameterTypes.allSatisfy({ $0 == nil || (!$0!.isEmpty && $0!.allSatisfy(allowed.contains)) }) else { return nil }
        let placeholder: (Int) -> String = { k in
            guard let type = parameterTypes[k - 1] else { return "saslgate_batch.p\(k)" }
            return "(saslgate_batch.p\(k)::\(type))"
        }
        guard let inner = try? Self.translate(template, placeholder: placeholder).out else { return nil }
        var body = Substring(inner)
        while let last = body.last, last.isWhitespace || last == ";" { body = body.dropLast() }
        let arrays = (1...parameters.count).map { "$\($0)::text[]" }.joined(separator: ", ")
        let columns = (1...parameters.count).map { "p\($0)" }.joined(separator: ", ")
        return "SELECT saslgate_batch.i::text AS \(Self.batchIndexColumn), saslgate_q.* FROM unnest(\(arrays)) WITH ORDINALITY"
            + " AS saslgate_batch(\(columns), i) CROSS JOIN LATERAL (\n\(body)\n) AS saslgate_q"
    }

    private static func translate(
        _ template: LookupTemplate, placeholder: @escaping (Int) -> String
    ) throws(SQLTemplateError) -> Lexer {
        var lexer = Lexer(placeholder: placeholder)
        for part in template.parts {
            switch part {
            case .literal(let text):
                for c in text { try lexer.feed(c) }
            case .variable(let use):
                try lexer.variable(use)
            }
        }
        try lexer.finish()
        return lexer
    }

    /// The values of the parameters for one request, in order (`$1` first).
    public func values(for request: PassdbRequest) -> [String] {
        parameters.map { $0.value(in: request) }
    }

    /// The SQL text followed by each parameter and its value, for `--explain` (the user's own values,
    /// never a password).
    public func explained(for request: PassdbRequest) -> [String] {
        var lines = ["query: \(sql)"]
        for (i, use) in parameters.enumerated() {
            lines.append("$\(i + 1) = \(use.spelled) = '\(use.value(in: request))'")
        }
        return lines
    }
}

/// Why a query template was refused (for a `file:line` message).
public struct SQLTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// PostgreSQL's lexical states, as far as the translation needs them.
private struct Lexer {
    enum State: Equatable {
        case normal
        /// Inside `'...'`; the pieces are collected until the closing quote.
        case string
        /// Inside `E'...'`: backslash escapes; no variables allowed.
        case escapeString(backslash: Bool)
        case identifier
        case lineComment
        /// Inside `/* */` (they nest); `previous` is the last character of the comment's body.
        case blockComment(depth: Int, previous: Character?)
        /// Inside `$tag$...$tag$`; `tag` includes both dollars, `body` is what followed the opening tag.
        case dollarString(tag: String, body: String)
    }

    enum Piece: Equatable {
        case text(String)
        case parameter(Int)
    }

    /// How parameter `n` is written (`$n`, or a column of the batch).
    let placeholder: (Int) -> String
    var state = State.normal
    var out = ""
    var parameters: [LookupTemplate.Use] = []
    /// The pieces of the string literal being read.
    var pieces: [Piece] = []
    /// Characters seen in the normal state that may start a token (`$`, `-`, `/`, `E`, `'` after `'`).
    var pending = ""

    mutating func parameterNumber(_ use: LookupTemplate.Use) -> Int {
        if let i = parameters.firstIndex(of: use) { return i + 1 }
        parameters.append(use)
        return parameters.count
    }

    mutating func variable(_ use: LookupTemplate.Use) throws(SQLTemplateError) {
        switch state {
        case .normal:
            try flushPending()
            out += placeholder(parameterNumber(use))
        case .string:
            if pending == "'" {
                // `''` so far was the end of the literal after all: close it, then the bare variable.
                pending = ""
                closeString()
                out += placeholder(parameterNumber(use))
            } else {
                pieces.append(.parameter(parameterNumber(use)))
            }
        case .escapeString:
            throw SQLTemplateError("\(use.spelled) inside an E'...' escape string cannot be bound; write it in a plain '...' literal")
        case .identifier:
            throw SQLTemplateError("\(use.spelled) inside a \"quoted identifier\" cannot be bound; a variable can only be a value")
        case .lineComment, .blockComment:
            throw SQLTemplateError("\(use.spelled) inside a comment; remove the comment or the variable")
        case .dollarString:
            throw SQLTemplateError("\(use.spelled) inside a dollar-quoted string cannot be bound; write it in a plain '...' literal")
        }
    }

    mutating func feed(_ c: Character) throws(SQLTemplateError) {
        switch state {
        case .normal:
            try normal(c)
        case .string:
            if pending == "'" {
                pending = ""
                if c == "'" {  // a doubled quote: one quote in the value
                    appendText("'")
                    return
                }
                closeString()
                try normal(c)
                return
            }
            if c == "'" { pending = "'" } else { appendText(String(c)) }
        case .escapeString(let backslash):
            out.append(c)
            if backslash { state = .escapeString(backslash: false) } else if c == "\\" {
                state = .escapeString(backslash: true)
            } else if c == "'" {
                state = .normal
            }
        case .identifier:
            out.append(c)
            if c == "\"" { state = .normal }
        case .lineComment:
            out.append(c)
            if c == "\n" || c == "\r" { state = .normal }
        case .blockComment(let depth, let previous):
            out.append(c)
            if previous == "*" && c == "/" {
                state = depth == 1 ? .normal : .blockComment(depth: depth - 1, previous: nil)
            } else if previous == "/" && c == "*" {
                state = .blockComment(depth: depth + 1, previous: nil)
            } else {
                state = .blockComment(depth: depth, previous: c)
            }
        case .dollarString(let tag, let body):
            out.append(c)
            let body = body + String(c)
            state = body.hasSuffix(tag) ? .normal : .dollarString(tag: tag, body: body)
        }
    }

    /// A character in the normal state; `pending` holds a token start that needs the next character.
    mutating func normal(_ c: Character) throws(SQLTemplateError) {
        if !pending.isEmpty {
            let p = pending
            if p.first == "$" {
                if c == "$" {  // `$tag$` complete: a dollar-quoted string starts
                    pending = ""
                    out += p + "$"
                    state = .dollarString(tag: p + "$", body: "")
                    return
                }
                if p == "$" && c.isNumber {
                    throw SQLTemplateError("'$\(c)' in the query: saslgate numbers the parameters itself; write the variables (%n, %d, ...) instead")
                }
                if c.isLetter || c == "_" || (p.count > 1 && c.isNumber) {
                    pending.append(c)
                    return
                }
                pending = ""
                out += p
            } else if p == "-" {
                pending = ""
                out += "-"
                if c == "-" {
                    out += "-"
                    state = .lineComment
                    return
                }
            } else if p == "/" {
                pending = ""
                out += "/"
                if c == "*" {
                    out += "*"
                    state = .blockComment(depth: 1, previous: nil)
                    return
                }
            } else if p == "E" || p == "e" {
                pending = ""
                out += p
                if c == "'" {
                    out += "'"
                    state = .escapeString(backslash: false)
                    return
                }
            }
        }
        switch c {
        case "'":
            // An E just before the quote is handled above; a letter before the E makes it part of a word.
            state = .string
            pieces = []
        case "\"":
            out.append(c)
            state = .identifier
        case "$":
            // Inside a word (`a$b`) a dollar is part of the identifier; elsewhere it may open a
            // dollar-quoted string or be a `$1`.
            if let last = out.last, last.isLetter || last.isNumber || last == "_" {
                out.append(c)
            } else {
                pending = "$"
            }
        case "-", "/":
            pending = String(c)
        case "E", "e":
            if let last = out.last, last.isLetter || last.isNumber || last == "_" {
                out.append(c)
            } else {
                pending = String(c)
            }
        default:
            out.append(c)
        }
    }

    mutating func flushPending() throws(SQLTemplateError) {
        guard !pending.isEmpty else { return }
        if pending.first == "$" && pending.count > 1 {
            throw SQLTemplateError("'\(pending)' looks like the start of a dollar-quoted string without its closing '$'")
        }
        out += pending
        pending = ""
    }

    mutating func appendText(_ s: String) {
        if case .text(let t) = pieces.last {
            pieces[pieces.count - 1] = .text(t + s)
        } else {
            pieces.append(.text(s))
        }
    }

    /// Writes the string literal just closed: as written, as one parameter, or as a concatenation.
    mutating func closeString() {
        state = .normal
        let quoted: (String) -> String = { "'" + String($0.flatMap { $0 == "'" ? ["'", "'"] : [$0] }) + "'" }
        switch pieces.count {
        case 0:
            out += "''"
        case 1:
            switch pieces[0] {
            case .text(let t): out += quoted(t)
            case .parameter(let n): out += placeholder(n)
            }
        default:
            if !pieces.contains(where: { if case .parameter = $0 { true } else { false } }) {
                out += quoted(pieces.map { if case .text(let t) = $0 { t } else { "" } }.joined())
            } else {
                out += "(" + pieces.map { piece in
                    switch piece {
                    case .text(let t): quoted(t)
                    case .parameter(let n): placeholder(n)
                    }
                }.joined(separator: " || ") + ")"
            }
        }
        pieces = []
    }

    mutating func finish() throws(SQLTemplateError) {
        switch state {
        case .normal:
            try flushPending()
        case .string:
            if pending == "'" {
                pending = ""
                closeString()
            } else {
                throw SQLTemplateError("a '...' string literal is not closed; close it with a single quote")
            }
        case .escapeString:
            throw SQLTemplateError("an E'...' string is not closed")
        case .identifier:
            throw SQLTemplateError("a \"quoted identifier\" is not closed")
        case .lineComment:
            break
        case .blockComment:
            throw SQLTemplateError("a /* comment */ is not closed")
        case .dollarString(let tag, _):
            throw SQLTemplateError("a dollar-quoted string is not closed with \(tag)")
        }
    }
}
