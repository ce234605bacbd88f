/// What the configuration parser must know about one passdb driver to check a `passdbs` entry and say
/// what is wrong with it: the name, what the argument after `driver:` is, the options in `{...}` and
/// how their values are checked. The drivers themselves live in the passdb modules, which this module
/// does not see; `PassdbRegistry` describes each of them this way and hands the list to the parser.
public struct PassdbDriverInfo: Sendable {
    /// What follows `driver:`.
    public enum Argument: Sendable, Equatable {
        /// A file that holds secrets (a user table, a store). A relative path is taken relative to the
        /// configuration file's directory; the daemon refuses the file when others may read or write it.
        case secretFile
        /// A name passed on as written; `hint` says what it is in a message, e.g.
        /// "a PAM service name, e.g. pam:smtp".
        case name(hint: String)

        /// What the argument is, in words, for a message.
        public var hint: String {
            switch self {
            case .secretFile: "a file path"
            case .name(let hint): hint
            }
        }
    }

    /// One option of the driver (`driver:argument{name=value}`).
    public struct Option: Sendable, Equatable {
        public var name: String
        /// The values it takes and its default, e.g. `default|all|none (default: default)`.
        public var values: String

        public init(_ name: String, _ values: String) {
            self.name = name
            self.values = values
        }
    }

    public var name: String
    public var argument: Argument
    /// The driver's own options; `result_failure` and `result_internalfail` belong to every driver.
    public var options: [Option]
    /// A `passdbs` entry that uses the driver, for messages and documentation.
    public var example: String
    /// Checks the argument and the option values (every option name is one of `options`): what is
    /// wrong, in words, or nil.
    public var check: @Sendable (_ argument: String, _ options: [String: String]) -> String?

    public init(
        name: String, argument: Argument, options: [Option] = [], example: String,
        check: @escaping @Sendable (_ argument: String, _ options: [String: String]) -> String? = { _, _ in nil }
    ) {
        self.name = name
        self.argument = argument
        self.options = options
        self.example = example
        self.check = check
    }

    /// Every option of an entry of this driver, the chain's included, as `name=values` for a message.
    var optionSummary: String {
        let all = options + PassdbSpec.chainOptions
        let listed = all.map { "\($0.name)=\($0.values)" }
        return (options.isEmpty ? "only " : "") + listed.dropLast().joined(separator: ", ") + " and " + listed.last!
    }
}

/// The passdb drivers a configuration may name, in the order they are listed in messages.
public struct PassdbCatalog: Sendable {
    public let drivers: [PassdbDriverInfo]

    public init(_ drivers: [PassdbDriverInfo]) {
        self.drivers = drivers
    }

    public func driver(named name: String) -> PassdbDriverInfo? {
        drivers.first { $0.name == name }
    }

    /// `passwd-file, pam, sasldb`, for a message.
    public var names: String { drivers.map(\.name).joined(separator: ", ") }
}
