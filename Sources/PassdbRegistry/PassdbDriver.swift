public import AuthConfig
public import Logging
public import Passdb

/// Everything the daemon, the configuration check, `doctor` and the CLI need to know about one passdb
/// driver. `PassdbRegistry.drivers` holds one of these per driver; nothing else names a driver.
public struct PassdbDriver: Sendable {
    /// What the configuration parser checks: name, argument (a secret file or a name), options.
    public let info: PassdbDriverInfo
    /// Groups the daemon's user must also be in for the driver to work (added when it drops root).
    public let supplementaryGroups: [SupplementaryGroup]
    /// How `saslgate user ...` edits the driver's data; nil: the CLI cannot.
    public let userEditor: UserEditor?
    /// The driver talks to servers over the network (a database, a directory, a key server), so the
    /// daemon's sandbox must allow IP sockets (`NetworkNeeds`).
    public let usesNetwork: Bool
    /// Opens the passdb of a checked `passdbs` entry. What it can verify is its `capabilities`, which
    /// may depend on the data (the schemes in a table, the secrets in a store).
    let open: @Sendable (PassdbSpec, PassdbContext) throws -> any PasswordDatabase

    public var name: String { info.name }

    init(
        _ info: PassdbDriverInfo, supplementaryGroups: [SupplementaryGroup] = [], userEditor: UserEditor? = nil,
        usesNetwork: Bool = false,
        open: @escaping @Sendable (PassdbSpec, PassdbContext) throws -> any PasswordDatabase
    ) {
        self.info = info
        self.supplementaryGroups = supplementaryGroups
        self.userEditor = userEditor
        self.usesNetwork = usesNetwork
        self.open = open
    }

    /// The editors of `saslgate user`; each is a set of actions in AdminCommands.
    public enum UserEditor: Sendable, Equatable {
        /// A Dovecot-style table, one line per user (`PasswdFileEditor`).
        case passwdFile
        /// The sasldb-like store, several secrets per user (`SASLDBEditor`).
        case sasldb
    }

    /// A group the daemon needs for a driver, with what breaks without it (for `doctor`).
    public struct SupplementaryGroup: Sendable, Equatable {
        public let name: String
        /// Who reads with the group's rights, e.g. `pam_unix`.
        public let neededBy: String
        /// What fails when the daemon is not in the group.
        public let withoutIt: String
    }
}

/// What opening a passdb may use besides its `passdbs` entry.
public struct PassdbContext: Sendable {
    public var defaultRealm: String?
    /// Runs hashing and blocking calls (the daemon's thread pool; inline in `--check`).
    public var executor: any BlockingExecutor
    public var logger: Logger

    public init(defaultRealm: String?, executor: any BlockingExecutor, logger: Logger) {
        self.defaultRealm = defaultRealm
        self.executor = executor
        self.logger = logger
    }
}
