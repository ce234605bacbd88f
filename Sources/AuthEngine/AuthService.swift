public import AuthConfig
import AuthCore
import AuthProtocol
public import Logging
public import Passdb
public import SASL

/// Everything the connections of one configuration generation share: the enabled mechanisms that the
/// passdbs can really serve, the passdb chain, the policies. Immutable; a reload builds a new one.
public final class AuthService: Sendable {
    public let configuration: EngineConfiguration
    public let chain: PassdbChain
    /// Mechanisms to advertise, in configuration order.
    public let advertised: [MechanismDescriptor]
    /// Configured mechanisms left out because no passdb can serve them (for logs and `--check`).
    public let unservable: [String]
    public let mechanismContext: MechanismContext
    public let logger: Logger
    /// Failure counts; shared across reloads.
    public let penalty: PenaltyTable
    /// Where finished requests are counted (the daemon's Prometheus registry); nil in tests.
    public let metrics: (any AuthMetrics)?
    /// Where the one line per finished request goes (by default through `logger`).
    public let requestLog: any AuthRequestLog
    let gate: IdentityGate
    let byName: [String: MechanismDescriptor]
    let mechLines: [UInt8]

    public convenience init(settings: Settings, passdbs: [any PasswordDatabase], hostname: String, logger: Logger) throws(ConfigErrors) {
        try self.init(settings: settings, chain: PassdbChain(passdbs), hostname: hostname, logger: logger)
    }

    /// `penalty`: the table of the previous generation on reload (its policy is updated), or nil.
    public init(
        settings: Settings, chain: PassdbChain, hostname: String, logger: Logger, penalty: PenaltyTable? = nil,
        metrics: (any AuthMetrics)? = nil, requestLog: (any AuthRequestLog)? = nil
    ) throws(ConfigErrors) {
        let configuration = EngineConfiguration(settings: settings)
        self.configuration = configuration
        self.metrics = metrics
        self.requestLog = requestLog ?? LoggerRequestLog(logger)
        var chain = chain
        if let schemes = settings.rehashSchemes, let policy = RehashPolicy(schemes) {
            chain.rehasher = Rehasher(policy: policy, logger: logger) { [metrics] result in metrics?.rehashFinished(result: result) }
        }
        if settings.authCacheSize > 0 {
            chain.cache = AuthCache(
                maxEntries: settings.authCacheSize, ttl: settings.authCacheTTL, negativeTTL: settings.authCacheNegativeTTL)
        }
        let table: PenaltyTable
        if let penalty {
            penalty.update(policy: configuration.penalty)
            table = penalty
        } else {
            table = PenaltyTable(policy: configuration.penalty)
        }
        self.penalty = table
        self.gate = IdentityGate(configuration, penalty: table)
        self.chain = chain
        self.logger = logger
        self.mechanismContext = MechanismContext(hostname: hostname, realms: settings.defaultRealm.map { [$0] } ?? [])
        var advertised: [MechanismDescriptor] = []
        var unservable: [String] = []
        var errors: [ConfigError] = []
        for name in settings.mechanisms {
            guard let descriptor = MechanismRegistry.descriptor(named: name) else {
                let known = MechanismRegistry.all.map(\.name).joined(separator: " ")
                errors.append(ConfigError(file: settings.file, line: nil,
                    "mechanisms: unknown mechanism \(name); known: \(known)"))
                continue
            }
            if chain.canServe(descriptor.need.key) {
                advertised.append(descriptor)
            } else {
                unservable.append(descriptor.name)
            }
        }
        if errors.isEmpty && advertised.isEmpty {
            errors.append(ConfigError(file: settings.file, line: nil,
                "none of the mechanisms (\(settings.mechanisms.joined(separator: " "))) can be served by the configured passdbs; Postfix refuses a server without mechanisms"))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        self.advertised = advertised
        self.unservable = unservable
        self.byName = Dictionary(uniqueKeysWithValues: advertised.map { ($0.name, $0) })
        var lines: [UInt8] = []
        for d in advertised { ServerMessage.mech(name: d.name, flags: d.flags.words).encode(into: &lines) }
        self.mechLines = lines
    }

    /// The enabled mechanism for a client-supplied name (case-insensitive), if advertised.
    public func mechanism(named name: String) -> MechanismDescriptor? {
        byName[name.uppercased()]
    }
}

extension PassdbNeed {
    var key: SASLNeedKey {
        switch self {
        case .nothing: .nothing
        case .verifyPlain: .verifyPlain
        case .verifyToken: .verifyToken
        case .credentials(let s): .credentials(s)
        }
    }
}

/// Receives one event per finished request (success, failure, timeout, cancel).
public protocol AuthMetrics: Sendable {
    func requestFinished(result: String, mechanism: String, passdb: String?, seconds: Double)
    /// One finished rewrite of `rehash_schemes`: `ok`, `failed` or `unchanged`.
    func rehashFinished(result: String)
}

extension AuthMetrics {
    public func rehashFinished(result: String) {}
}
