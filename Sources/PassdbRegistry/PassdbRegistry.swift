public import AuthConfig
public import Logging
public import Passdb
import PassdbLDAP
import PassdbOAuth2
import PassdbPAM
import PassdbPgSQL
import PassdbSASLDB

/// The one table of passdb drivers. The configuration parser checks `passdbs` against `catalog`; the
/// daemon opens the chain, checks the secret files and picks its supplementary groups here; `doctor`
/// and the CLI ask the same table. To add a driver: write it in a module of its own (a
/// `PasswordDatabase` with a `driverName`), add its entry to `drivers`, and add the module to this
/// target's dependencies in Package.swift.
public enum PassdbRegistry {
    public static let drivers: [PassdbDriver] = [passwdFile, sasldb, pam, ldap, oauth2, pgsql]

    /// What the configuration parser needs: `Settings.load(path:passdbDrivers: PassdbRegistry.catalog)`.
    public static let catalog = PassdbCatalog(drivers.map(\.info))

    public static func driver(named name: String) -> PassdbDriver? {
        drivers.first { $0.name == name }
    }

    // MARK: - The drivers

    static let passwdFile = PassdbDriver(
        PassdbDriverInfo(
            name: PasswdFilePassdb.driverName, argument: .secretFile,
            example: "\(PasswdFilePassdb.driverName):/etc/saslgate/users"),
        userEditor: .passwdFile,
        open: { spec, context in
            try PasswdFilePassdb(
                path: spec.argument, defaultRealm: context.defaultRealm, executor: context.executor, logger: context.logger)
        })

    static let sasldb = PassdbDriver(
        PassdbDriverInfo(
            name: SASLDBPassdb.driverName, argument: .secretFile,
            example: "\(SASLDBPassdb.driverName):/etc/saslgate/sasldb"),
        userEditor: .sasldb,
        open: { spec, context in
            try SASLDBPassdb(path: spec.argument, executor: context.executor, logger: context.logger)
        })

    static let pam = PassdbDriver(
        PassdbDriverInfo(
            name: PAMPassdb.driverName,
            argument: .name(hint: "a PAM service name, e.g. \(PAMPassdb.driverName):smtp"),
            options: [
                .init("strip_realm", RealmStripping.allCases.map(\.rawValue).joined(separator: "|")),
                .init("max_concurrency", "1-\(PAMOptions.maximumConcurrency) (default \(PAMOptions.defaultMaxConcurrency))"),
                .init("max_queue", "0-\(PAMOptions.maximumQueue) (default \(PAMOptions.defaultMaxQueue))"),
                .init("max_stuck", "0-\(PAMOptions.maximumConcurrency) (default: max_concurrency)"),
                .init("timeout", "10ms-9s (default \(PAMOptions.defaultTimeout.components.seconds)s)"),
                .init("confdir", "an absolute directory (default /etc/pam.d)"),
            ],
            example: "\(PAMPassdb.driverName):smtp{strip_realm=all}",
            check: { service, options in
                do {
                    try PAMPassdb.validateServiceName(service)
                    _ = try PAMOptions.parse(options)
                    return nil
                } catch {
                    return "\(error)"
                }
            }),
        supplementaryGroups: [
            .init(
                name: "shadow", neededBy: "pam_unix",
                withoutIt: "pam_unix cannot read /etc/shadow (its unix_chkpwd helper checks only the caller's own password), so system-account logins fail")
        ],
        open: { spec, context in
            try PAMPassdb(
                service: spec.argument, options: PAMOptions.parse(spec.options), defaultRealm: context.defaultRealm,
                logger: context.logger)
        })

    static let ldap = PassdbDriver(
        PassdbDriverInfo(
            name: LDAPPassdb.driverName, argument: .secretFile,
            example: "\(LDAPPassdb.driverName):/etc/saslgate/ldap.conf"),
        usesNetwork: true,
        open: { spec, context in
            try LDAPPassdb(path: spec.argument, defaultRealm: context.defaultRealm, executor: context.executor, logger: context.logger)
        })

    /// Bearer tokens (OAUTHBEARER, XOAUTH2) only; its argument is a settings file that may hold a client secret.
    static let oauth2 = PassdbDriver(
        PassdbDriverInfo(
            name: OAuth2Passdb.driverName, argument: .secretFile,
            example: "\(OAuth2Passdb.driverName):/etc/saslgate/oauth2.conf"),
        usesNetwork: true,
        open: { spec, context in
            try OAuth2Passdb(settingsPath: spec.argument, executor: context.executor, logger: context.logger)
        })

    /// PostgreSQL (docs/PGSQL.md): the argument is its settings file, which holds the database password.
    static let pgsql = PassdbDriver(
        PassdbDriverInfo(
            name: PgSQLPassdb.driverName, argument: .secretFile,
            example: "\(PgSQLPassdb.driverName):/etc/saslgate/pgsql.conf"),
        usesNetwork: true,
        open: { spec, context in
            try PgSQLPassdb(path: spec.argument, executor: context.executor, logger: context.logger)
        })

    // MARK: - What the daemon, doctor and the CLI ask

    /// Opens every passdb of `settings.passdbs`, in order, into the chain; every failure is reported
    /// with the line of its entry.
    public static func openChain(_ settings: Settings, executor: any BlockingExecutor, logger: Logger)
        throws(ConfigErrors) -> PassdbChain
    {
        let context = PassdbContext(defaultRealm: settings.defaultRealm, executor: executor, logger: logger)
        var entries: [PassdbChain.Entry] = []
        var errors: [ConfigError] = []
        for spec in settings.passdbs {
            guard let driver = driver(named: spec.driver) else {
                errors.append(ConfigError(file: settings.file, line: spec.line,
                    "unknown passdb driver '\(spec.driver)'; known: \(catalog.names)"))
                continue
            }
            do {
                let db = try driver.open(spec, context)
                entries.append(.init(db, resultFailure: spec.resultFailure, resultInternalFail: spec.resultInternalFail))
            } catch {
                errors.append(ConfigError(file: settings.file, line: spec.line, "passdb \(spec): \(error)"))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return PassdbChain(entries)
    }

    /// The entries whose argument is a file of secrets: the daemon refuses such a file when others may
    /// read or write it.
    public static func secretFiles(in passdbs: [PassdbSpec]) -> [PassdbSpec] {
        passdbs.filter { driver(named: $0.driver)?.info.argument == .secretFile }
    }

    /// The groups the daemon's user must also be in for these passdbs, each once, with the driver that
    /// needs it. The daemon adds them when it drops root; `doctor` checks that the systemd unit does.
    public static func supplementaryGroups(for passdbs: [PassdbSpec]) -> [(driver: String, group: PassdbDriver.SupplementaryGroup)] {
        var out: [(driver: String, group: PassdbDriver.SupplementaryGroup)] = []
        for spec in passdbs {
            for group in driver(named: spec.driver)?.supplementaryGroups ?? [] where !out.contains(where: { $0.group.name == group.name }) {
                out.append((spec.driver, group))
            }
        }
        return out
    }

    /// Why the daemon needs IP networking with these settings (TCP endpoints, passdbs that reach
    /// servers), one reason each; empty: Unix sockets only. `saslgated --check` prints it, scripts/install
    /// and the package's postinst write the systemd drop-in that allows it, `doctor` checks the unit.
    public static func networkNeeds(_ settings: Settings) -> [String] {
        settings.listen.filter(\.isInet).map { "listen \($0)" }
            + settings.passdbs.filter { driver(named: $0.driver)?.usesNetwork == true }.map { "passdb \($0.driver):\($0.argument)" }
    }

    /// The drivers whose data `saslgate user` can edit, in table order.
    public static var editableDrivers: [PassdbDriver] { drivers.filter { $0.userEditor != nil } }
}
