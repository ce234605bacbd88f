public import AuthConfig
public import AuthCore

/// The part of the configuration the request engine reads: what it takes from `Settings`, and nothing
/// more. The only place in the engine where a `Settings` key becomes an engine value; `conf/saslgated.conf`
/// documents each key named below.
public struct EngineConfiguration: Sendable {
    /// `failure_delay`: how long a failed authentication waits before its FAIL goes out (0: at once).
    public var failureDelay: Double
    /// `cleartext_requires_tls`: PLAIN and LOGIN fail at once on requests without `secured`.
    public var cleartextRequiresTLS: Bool
    /// `request_timeout`: a request unfinished after this long is dropped without a reply.
    public var requestTimeout: Double
    /// `max_pending_requests`: unfinished requests per connection, and failures waiting out their delay.
    public var maxPendingRequests: Int
    /// `default_realm`, `realms`, `username_lowercase`, `username_chars`.
    public var usernamePolicy: UsernamePolicy
    /// `authz_rules`: who may act as whom.
    public var authzRules: [AuthzRule]
    /// `anonymous_username`: the name an ANONYMOUS login is given.
    public var anonymousUsername: String?
    /// `failure_delay` and the `penalty_*` keys, `trusted_networks`.
    public var penalty: PenaltyTable.Policy
    /// `require_app_passwords`: where SMTP logins with the main password are refused.
    public var requireAppPasswords: AppPasswordRequirement

    public init(settings: Settings) {
        failureDelay = settings.failureDelay
        cleartextRequiresTLS = settings.cleartextRequiresTLS
        requestTimeout = settings.requestTimeout
        maxPendingRequests = settings.maxPendingRequests
        usernamePolicy = UsernamePolicy(
            defaultRealm: settings.defaultRealm, realms: settings.realms, lowercase: settings.usernameLowercase,
            allowedCharacters: settings.usernameChars)
        authzRules = settings.authzRules
        anonymousUsername = settings.anonymousUsername
        penalty = PenaltyTable.Policy(settings: settings)
        requireAppPasswords = settings.requireAppPasswords
    }
}

extension PenaltyTable.Policy {
    public init(settings: Settings) {
        baseDelay = settings.failureDelay
        maxDelay = settings.penaltyMaxDelay
        blockAfter = settings.penaltyBlockAfter
        cooldown = settings.penaltyCooldown
        window = settings.penaltyWindow
        maxEntries = settings.penaltyMaxEntries
        trusted = settings.trustedNetworks.compactMap(CIDR.init)
    }
}
