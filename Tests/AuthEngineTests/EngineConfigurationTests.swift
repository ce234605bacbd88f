import PassdbRegistry
import AuthConfig
import AuthCore
import AuthEngine
import Testing

/// The engine reads its keys from `Settings` in one place: each one arrives.
@Suite struct EngineConfigurationTests {
    @Test func everyKeyIsCarriedOver() throws {
        let settings = try Settings.parse(text: """
            passdbs = passwd-file:/u
            failure_delay = 500ms
            cleartext_requires_tls = no
            request_timeout = 30s
            max_pending_requests = 7
            default_realm = Example.org
            realms = example.org other.org
            username_lowercase = no
            username_chars = abc@.
            authz_rules = relay@example.org=>*@example.org
            anonymous_username = guest
            penalty_max_delay = 3s
            penalty_block_after = 4
            penalty_cooldown = 60s
            penalty_window = 120s
            penalty_max_entries = 1000
            trusted_networks = 10.0.0.0/8
            """, file: "engine.conf", passdbDrivers: PassdbRegistry.catalog)
        let c = EngineConfiguration(settings: settings)
        #expect(c.failureDelay == 0.5)
        #expect(!c.cleartextRequiresTLS)
        #expect(c.requestTimeout == 30)
        #expect(c.maxPendingRequests == 7)
        #expect(c.usernamePolicy.defaultRealm == "example.org")
        #expect(c.usernamePolicy.realms == ["example.org", "other.org"])
        #expect(!c.usernamePolicy.lowercase)
        #expect(c.usernamePolicy.allowedCharacters == Set("abc@.".unicodeScalars))
        #expect(c.authzRules == [AuthzRule("relay@example.org=>*@example.org")!])
        #expect(c.anonymousUsername == "guest")
        #expect(c.penalty.baseDelay == 0.5)
        #expect(c.penalty.maxDelay == 3)
        #expect(c.penalty.blockAfter == 4)
        #expect(c.penalty.cooldown == 60)
        #expect(c.penalty.window == 120)
        #expect(c.penalty.maxEntries == 1000)
        #expect(c.penalty.trusted == [CIDR("10.0.0.0/8")!])
    }
}
