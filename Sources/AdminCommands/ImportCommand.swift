public import ArgumentParser
import AuthCore
import Passdb
public import PassdbSASLDB

/// `saslgate import`: bring users over from another system.
public struct ImportCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import users from another system into a saslgate store.",
        subcommands: [ImportSASLDB2Command.self]
    )

    public init() {}
}

/// `saslgate import sasldb2 FILE [--db sasldb:PATH | -c CONFIG] [--mechs LIST] [--cleartext] [--scheme S] [--dry-run]`
public struct ImportSASLDB2Command: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sasldb2",
        abstract: "Import a Cyrus SASL sasldb2 file (as written by saslpasswd2) into a sasldb: store.",
        discussion: """
            Every user's cleartext userPassword becomes a yescrypt hash plus the secrets of the chosen \
            mechanisms (default: all of SCRAM-SHA-1, SCRAM-SHA-256, CRAM-MD5 and DIGEST-MD5); the cleartext \
            itself is kept only with --cleartext. The sasldb2 file is opened read-only and never changed. \
            Users already in the store are skipped, never overwritten. Everything is written in one \
            transaction: if anything fails, nothing is imported. Exit status: 0 imported, 1 nothing to \
            import (every user skipped), 2 error.
            """
    )

    @Argument(help: ArgumentHelp("The Cyrus sasldb2 file (Berkeley DB hash, e.g. /etc/sasldb2).", valueName: "file"))
    public var file: String

    @Option(
        name: .long,
        help: ArgumentHelp("The store to write, as sasldb:PATH (created with mode 0640 when missing).", valueName: "sasldb:path"))
    public var db: String?

    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp(
            "The daemon's configuration; the store is its first sasldb: passdb (default: \(ConfigLookup.defaultPath)).",
            valueName: "config"))
    public var config: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Mechanism secrets to store besides the hash, comma-separated: "
                + "\(SASLDBProperty.mechanismNames.joined(separator: ", ")) (default: all).",
            valueName: "mechs"))
    public var mechs: String?

    @Flag(
        name: .long,
        help: "Also keep each cleartext password (userPassword, as Cyrus does). Anyone who can read the store then has every password.")
    public var cleartext = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Scheme of the password hash: CRYPT (yescrypt, the default), SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, SSHA512, SSHA256.",
            valueName: "scheme"))
    public var scheme: SchemeArgument = SchemeArgument(.defaultForNewPasswords)

    @Flag(name: .long, help: "Show what would be imported and skipped; write nothing.")
    public var dryRun = false

    public init() {}

    public func validate() throws {
        if db != nil && config != nil { throw ValidationError("give either --db or --config, not both") }
        if let db {
            guard db.hasPrefix(ImportActions.dbPrefix), db.count > ImportActions.dbPrefix.count else {
                throw ValidationError("--db takes sasldb:PATH, e.g. --db sasldb:/etc/saslgate/sasldb.db")
            }
        }
    }

    public func run() throws {
        let store = try ImportActions.storePath(db: db, config: config)
        var kinds: Set<SASLDBProperty>
        if let mechs {
            do {
                kinds = try SASLDBProperty.parse(mechanisms: mechs)
            } catch {
                throw CLIError.failure("\(error)")
            }
        } else {
            kinds = SASLDBProperty.allMechanismSecrets
        }
        if cleartext { kinds.insert(.cleartext) }
        let policy = SASLDBSecretPolicy(kinds: kinds, hashScheme: scheme.scheme)
        try ImportActions.importSASLDB2(source: file, store: store, policy: policy, dryRun: dryRun, io: CommandIO.current)
    }
}

/// The work behind `saslgate import ...`, callable without argument parsing.
public enum ImportActions {
    /// `sasldb:`, what `--db` starts with.
    static let dbPrefix = SASLDBPassdb.driverName + ":"

    /// The store path from `--db sasldb:PATH`, or the first `sasldb:` passdb of the configuration
    /// (a relative path is relative to the configuration's directory).
    public static func storePath(db: String?, config: String?) throws(CLIError) -> String {
        if let db {
            let path = String(db.dropFirst(dbPrefix.count))
            guard !path.isEmpty else { throw .failure("--db takes sasldb:PATH") }
            return path
        }
        let lookup = try ConfigLookup.load(path: config ?? ConfigLookup.defaultPath)
        guard let spec = lookup.settings.passdbs.first(where: { $0.driver == SASLDBPassdb.driverName }) else {
            throw .failure("\(lookup.path): 'passdbs' has no sasldb: entry; give the store with --db sasldb:PATH")
        }
        guard !spec.argument.isEmpty else { throw .failure("\(lookup.path): 'passdbs' has an empty sasldb: path") }
        if spec.argument.hasPrefix("/") { return spec.argument }
        let dir = lookup.path.lastIndex(of: "/").map { String(lookup.path[..<$0]) } ?? "."
        return (dir.isEmpty ? "" : dir) + "/" + spec.argument
    }

    /// Imports `source` into `store` and prints one line per user imported and per entry skipped, then
    /// a summary. Nothing imported (every user skipped) is a refusal (exit 1).
    public static func importSASLDB2(
        source: String, store: String, policy: SASLDBSecretPolicy, dryRun: Bool, io: CommandIO
    ) throws(CLIError) {
        if policy.kinds.contains(.cleartext) {
            io.err("warning: --cleartext keeps every password in clear text in \(store) (userPassword); prefer the hashes")
        }
        let report: SASLDB2ImportReport
        do {
            report = try SASLDB2Importer(sourcePath: source, policy: policy).run(into: store, dryRun: dryRun)
        } catch {
            throw CLIError("\(error)", exitCode: error.isRefusal ? ExitStatus.refused : ExitStatus.failure)
        }
        for warning in report.warnings { io.err("warning: \(warning)") }
        let verb = dryRun ? "would import" : "imported"
        for user in report.imported { io.out("\(verb) \(user)") }
        for skip in report.skipped { io.out("skipped \(skip)") }
        let users = report.imported.count == 1 ? "1 user" : "\(report.imported.count) users"
        let skipped = report.skipped.count == 1 ? "1 entry" : "\(report.skipped.count) entries"
        if dryRun {
            io.out("dry run: would import \(users) from \(source) into \(store), skip \(skipped); nothing was written")
            return
        }
        if report.imported.isEmpty {
            throw .refused("nothing imported from \(source) into \(store) (skipped \(skipped), see above)")
        }
        io.out("imported \(users) from \(source) into \(store), skipped \(skipped)")
        if report.createdStore {
            io.err(
                "note: created \(store) with mode 0640; let the daemon read it: "
                    + "chgrp DAEMON_GROUP \(store) \(store)-wal \(store)-shm")
        }
    }
}
