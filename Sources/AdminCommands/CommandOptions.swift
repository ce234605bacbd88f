public import ArgumentParser
public import Passdb

/// Where the user table is: `--file PATH`, or the first `passwd-file:` of `passdbs` in the configuration.
public struct TableOptions: ParsableArguments, Sendable {
    @Option(name: [.customShort("f"), .long], help: ArgumentHelp("The passwd-file to work on.", valueName: "path"))
    public var file: String?

    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp(
            "The daemon's configuration; the table is its first passwd-file: passdb (default: \(ConfigLookup.defaultPath)).",
            valueName: "config"
        )
    )
    public var config: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Realm of bare user names (default: default_realm of the configuration; none with --file).",
            valueName: "realm")
    )
    public var defaultRealm: String?

    public init() {}

    public func validate() throws {
        if file != nil && config != nil { throw ValidationError("give either --file or --config, not both") }
    }

    /// The table path and default realm these options select.
    public func resolve() throws(CLIError) -> TableLocation {
        if let file { return TableLocation(path: file, defaultRealm: defaultRealm) }
        let lookup = try ConfigLookup.load(path: config ?? ConfigLookup.defaultPath)
        return TableLocation(path: try lookup.passwdFilePath(), defaultRealm: defaultRealm ?? lookup.defaultRealm)
    }
}

/// A resolved table: the file and the realm of its bare names.
public struct TableLocation: Sendable, Equatable {
    public var path: String
    public var defaultRealm: String?

    public init(path: String, defaultRealm: String? = nil) {
        self.path = path
        self.defaultRealm = defaultRealm
    }
}

/// How a new password is obtained and hashed.
public struct PasswordOptions: ParsableArguments, Sendable {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Hash scheme: \(SchemeArgument.names.joined(separator: ", ")) (default: CRYPT, i.e. yescrypt).",
            valueName: "scheme"
        )
    )
    public var scheme: SchemeArgument = SchemeArgument(.defaultForNewPasswords)

    @Flag(
        name: .long, help: "Read the password from the first line of standard input instead of asking on the terminal.")
    public var passwordStdin = false

    public init() {}
}

/// A `--scheme` value: a scheme `saslgate` can write. `YESCRYPT` is accepted for `CRYPT`.
public struct SchemeArgument: ExpressibleByArgument, Sendable, Equatable {
    public var scheme: PasswordScheme

    public init(_ scheme: PasswordScheme) { self.scheme = scheme }

    public init?(argument: String) {
        let name =
            argument.hasPrefix("{") && argument.hasSuffix("}") ? String(argument.dropFirst().dropLast()) : argument
        if name.uppercased() == "YESCRYPT" {
            self.scheme = .crypt
            return
        }
        guard let s = PasswordScheme(name: name), PasswordScheme.hashable.contains(s) else { return nil }
        self.scheme = s
    }

    public var defaultValueDescription: String { scheme.rawValue }

    public static var allValueStrings: [String] { names }

    static let names = PasswordScheme.hashable.map(\.rawValue)
}
