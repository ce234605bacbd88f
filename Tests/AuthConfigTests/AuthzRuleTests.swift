import AuthConfig
import Testing

@Suite struct AuthzRuleTests {
    @Test func patterns() throws {
        let r = try #require(AuthzRule("relay@example.org=>*@example.org"))
        #expect(r.allows(authcid: "relay@example.org", authzid: "alice@example.org"))
        #expect(!r.allows(authcid: "relay@example.org", authzid: "alice@example.org.evil"))
        #expect(!r.allows(authcid: "relay@example.org", authzid: "alice@evilexample.org"))
        #expect(!r.allows(authcid: "other@example.org", authzid: "alice@example.org"))
        #expect(try #require(AuthzRule("a@x=>*")).allows(authcid: "a@x", authzid: "anyone@anywhere"))
        #expect(AuthzRule("a@x") == nil)
        #expect(AuthzRule("=>b") == nil)
    }
}
