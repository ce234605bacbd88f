/// One entry of `passdbs`: `driver:argument` (e.g. `passwd-file:/etc/saslgate/users`).
public struct PassdbSpec: Equatable, Sendable, CustomStringConvertible {
    /// What to do after a passdb answered (Dovecot's result_* settings).
    public enum ChainAction: String, Sendable, Equatable {
        /// Ask the next passdb.
        case `continue`
        /// Stop here with this answer.
        case `return`
    }

    public var driver: String
    public var argument: String
    public var line: Int
    /// Wrong password, disabled or expired account: Dovecot's default is to try the next passdb.
    public var resultFailure: ChainAction = .continue
    /// Internal failure (database down): try the next passdb; if none succeeds the answer is a
    /// temporary failure (Dovecot's default).
    public var resultInternalFail: ChainAction = .continue
    /// Driver-specific options, in the order written.
    public var options: [String: String] = [:]

    public init(driver: String, argument: String, line: Int, options: [String: String] = [:]) {
        self.driver = driver
        self.argument = argument
        self.line = line
        self.options = options
    }

    public var description: String { "\(driver):\(argument)" }

    /// Same passdb, wherever it was written.
    public static func == (a: PassdbSpec, b: PassdbSpec) -> Bool {
        a.driver == b.driver && a.argument == b.argument && a.options == b.options
            && a.resultFailure == b.resultFailure && a.resultInternalFail == b.resultInternalFail
    }

    /// The options every driver takes: they steer the chain, not the passdb.
    static let chainOptions = [
        PassdbDriverInfo.Option("result_failure", "continue|return"),
        PassdbDriverInfo.Option("result_internalfail", "continue|return"),
    ]

    /// The entries of a `passdbs` value, and a message for each mistake. `drivers` nil: only the syntax
    /// is read (for the built-in default, which names no file to resolve and no option).
    static func parseList(
        _ value: String, line: Int, drivers: PassdbCatalog?, resolve: (String) -> String
    ) -> (specs: [PassdbSpec], problems: [String]) {
        let items: [(String, [(String, String)])]
        switch splitList(value) {
        case .failure(let problem): return ([], [problem.description])
        case .success(let split): items = split
        }
        var specs: [PassdbSpec] = []
        var problems: [String] = []
        for (item, options) in items {
            switch make(item, options: options, line: line, drivers: drivers, resolve: resolve) {
            case .success(let spec): specs.append(spec)
            case .failure(let problem): problems.append(problem.description)
            }
        }
        return (specs, problems)
    }

    struct Problem: Error, CustomStringConvertible { var description: String }

    /// Splits a `passdbs` value into items, each with the options of a `{...}` block that follows it
    /// (`pam:smtp{strip_realm=all, result_failure=return}`; spaces around `=` are allowed).
    static func splitList(_ value: String) -> Result<[(String, [(String, String)])], Problem> {
        var items: [(String, [(String, String)])] = []
        var rest = Substring(value)
        while true {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" || $0 == "," })
            guard let first = rest.first else { break }
            if first == "{" {
                guard !items.isEmpty else { return .failure(Problem(description: "'{' must follow a passdb, as in driver:argument{option=value}")) }
                guard let close = rest.firstIndex(of: "}") else { return .failure(Problem(description: "missing '}' after passdb options")) }
                let block = gluedEquals(rest[rest.index(after: rest.startIndex)..<close])
                for word in Settings.words(block) {
                    guard let eq = word.firstIndex(of: "="), eq != word.startIndex else {
                        return .failure(Problem(description: "passdb option '\(word)' must be key=value"))
                    }
                    items[items.count - 1].1.append((String(word[..<eq]), String(word[word.index(after: eq)...])))
                }
                rest = rest[rest.index(after: close)...]
                continue
            }
            let end = rest.firstIndex(where: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "{" }) ?? rest.endIndex
            items.append((String(rest[..<end]), []))
            rest = rest[end...]
        }
        return .success(items)
    }

    /// Removes white space around `=` so `key = value` becomes one word.
    static func gluedEquals(_ text: Substring) -> String {
        var out = ""
        var pendingSpace = false
        for c in text {
            if c == " " || c == "\t" {
                pendingSpace = true
                continue
            }
            if pendingSpace && c != "=" && out.last != "=" && !out.isEmpty { out.append(" ") }
            pendingSpace = false
            out.append(c)
        }
        return out
    }

    /// One `driver:argument` item with its options, checked against the driver's description.
    static func make(
        _ item: String, options: [(String, String)], line: Int, drivers: PassdbCatalog?, resolve: (String) -> String
    ) -> Result<PassdbSpec, Problem> {
        guard let colon = item.firstIndex(of: ":"), colon != item.startIndex else {
            let example = drivers?.drivers.first.map { ", e.g. \($0.example)" } ?? ""
            return .failure(Problem(description: "passdb '\(item)' must be 'driver:argument'\(example)"))
        }
        let driver = String(item[..<colon]).lowercased()
        var argument = String(item[item.index(after: colon)...])
        let info = drivers?.driver(named: driver)
        if let drivers, info == nil {
            return .failure(Problem(description: "unknown passdb driver '\(driver)'; known: \(drivers.names)"))
        }
        guard !argument.isEmpty else {
            let hint = info.map { " (\($0.argument.hint))" } ?? ""
            return .failure(Problem(description: "passdb \(driver) needs an argument\(hint)"))
        }
        if info?.argument == .secretFile { argument = resolve(argument) }
        var spec = PassdbSpec(driver: driver, argument: argument, line: line)
        for (key, value) in options {
            switch key {
            case "result_failure", "result_internalfail":
                let action: ChainAction
                switch value {
                case "continue", "continue-fail": action = .continue
                case "return", "return-fail": action = .return
                default: return .failure(Problem(description: "\(key) for \(item) must be continue or return, not '\(value)'"))
                }
                if key == "result_failure" { spec.resultFailure = action } else { spec.resultInternalFail = action }
            default:
                if let info, !info.options.contains(where: { $0.name == key.lowercased() }) {
                    return .failure(Problem(description: "passdb \(spec): unknown option '\(key)'; \(driver) takes \(info.optionSummary)"))
                }
                guard spec.options[key] == nil else { return .failure(Problem(description: "option \(key) given twice for \(item)")) }
                spec.options[key] = value
            }
        }
        if let info, let problem = info.check(spec.argument, spec.options) {
            return .failure(Problem(description: "passdb \(spec): \(problem)"))
        }
        return .success(spec)
    }
}
