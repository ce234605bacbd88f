public import ArgumentParser
public import Passdb
import PassdbSASLDB
public import PassdbRegistry

/// Where the users are: `--db DRIVER:PATH` (a driver the CLI can edit, `PassdbRegistry`), `--file PATH`
/// (a passwd-file), or the first passdb of `passdbs` in the configuration that the CLI can edit.
public struct TableOptions: ParsableArguments, Sendable {
    @Option(name: [.customShort("f"), .long], help: ArgumentHelp("The passwd-file to work on.", valueName: "path"))
    public var file: String?

    @Option(
        name: .long,
        help: ArgumentHelp("The store to work on: \(TableOptions.dbForms).", valueName: "driver:path"))
    public var db: String?

    @Option(
        name: [.customShort("u"), .customLong("realm")],
        help: ArgumentHelp("Realm of a bare user name, like saslpasswd2 -u (default: default_realm).", valueName: "realm"))
    public var realm: String?

    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp(
            "The daemon's configuration; the table is its first passdb the CLI can edit (default: \(ConfigLookup.defaultPath)).",
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
        if [file != nil, config != nil, db != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give only one of --file, --db and --config")
        }
    }

    /// The store, and the realm of bare names, these options select.
    public func resolve() throws(CLIError) -> TableLocation {
        let bareRealm = realm ?? defaultRealm
        if let file { return TableLocation(path: file, defaultRealm: bareRealm) }
        if let db {
            guard let colon = db.firstIndex(of: ":"), !db[db.index(after: colon)...].isEmpty,
                let kind = PassdbRegistry.driver(named: String(db[..<colon]).lowercased())?.userEditor
            else {
                throw .failure("--db '\(db)' must be \(TableOptions.dbForms)")
            }
            return TableLocation(path: String(db[db.index(after: colon)...]), defaultRealm: bareRealm, kind: kind)
        }
        let lookup = try ConfigLookup.load(path: config ?? ConfigLookup.defaultPath)
        let (spec, kind) = try lookup.firstEditableStore()
        return TableLocation(path: spec.argument, defaultRealm: bareRealm ?? lookup.defaultRealm, kind: kind)
    }

    /// `passwd-file:PATH or sasldb:PATH`: what `--db` takes.
    static let dbForms = PassdbRegistry.editableDrivers.map { "\($0.name):PATH" }.joined(separator: " or ")
}

/// A resolved store: which editor works on it, the file and the realm of its bare names.
public struct TableLocation: Sendable, Equatable {
    public var path: String
    public var defaultRealm: String?
    public var kind: PassdbDriver.UserEditor

    public init(path: String, defaultRealm: String? = nil, kind: PassdbDriver.UserEditor = .passwdFile) {
        self.path = path
        self.defaultRealm = defaultRealm
        self.kind = kind
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

    @Option(
        name: .long,
        help: ArgumentHelp(
            "\(SASLDBPassdb.driverName) only: mechanism secrets to store besides the hash: \(SASLDBProperty.mechanismNames.dropFirst(2).joined(separator: ", ")) (comma-separated).",
            valueName: "list"))
    public var mechs: String?

    @Flag(
        name: .long,
        help: "\(SASLDBPassdb.driverName) only: also store the cleartext password (userPassword, as Cyrus does). Avoid: anyone who reads the store has every password.")
    public var cleartext = false

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

extension PasswordOptions {
    /// --mechs and --cleartext only make sense for a sasldb store.
    func requirePasswdFileCompatible() throws(CLIError) {
        if mechs != nil || cleartext {
            throw .failure(
                "--mechs and --cleartext apply to \(SASLDBPassdb.driverName) stores; a \(PasswdFilePassdb.driverName) entry has one scheme (use --scheme)")
        }
    }
}
