import AuthConfig
@testable import PassdbOAuth2
import Testing

/// The settings file: one source, issuer and audience for JWTs, no `none` or HMAC, bounded timeouts;
/// every error names the file and line.
@Suite struct OAuth2SettingsTests {
    static func parse(_ text: String, secretFile: String = "from-file") throws(ConfigErrors) -> OAuth2Settings {
        try OAuth2Settings.from(
            DriverConfigFile.parse(text: text, file: "/etc/saslgate/oauth2.conf", keys: OAuth2Settings.keys),
            readSecretFile: { _ in secretFile })
    }

    @Test func jwksFileWithDefaults() throws {
        let s = try Self.parse("jwks_file = /etc/saslgate/jwks.json\nissuer = https://idp\naudience = mail\n")
        #expect(s.source == .jwksFile(path: "/etc/saslgate/jwks.json"))
        #expect(s.usernameClaim == "email")
        #expect(s.clockSkew == 60)
        #expect(s.algorithms == ["RS256", "ES256"])
        #expect(s.timeout == 5)
    }

    @Test func introspectionWithSecretFile() throws {
        let s = try Self.parse("introspection_url = https://idp/introspect\nclient_id = saslgate\nclient_secret_file = /etc/saslgate/secret\n")
        #expect(s.source == .introspection(url: "https://idp/introspect", clientID: "saslgate", clientSecret: "from-file"))
        #expect(s.issuer == nil)
    }

    @Test(arguments: [
        ("issuer = i\naudience = a\n", "exactly one of"),
        ("jwks_file = /a\njwks_url = https://b\nissuer = i\naudience = a\n", "oauth2.conf:2: set exactly one"),
        ("jwks_file = /a\naudience = a\n", "'issuer' is not set"),
        ("jwks_file = /a\nissuer = i\naudience = a\nalgorithms = RS256 none\n", "oauth2.conf:4: algorithms: none is refused"),
        ("jwks_file = /a\nissuer = i\naudience = a\nalgorithms = HS256\n", "HS256 is refused"),
        ("jwks_file = /a\nissuer = i\naudience = a\ntimeout = 30s\n", "oauth2.conf:4: timeout: expected a duration"),
        ("jwks_file = relative\nissuer = i\naudience = a\n", "must be an absolute path"),
        ("jwks_url = ftp://x\nissuer = i\naudience = a\n", "must start with https://"),
        ("introspection_url = https://idp/i\n", "needs client_id and client_secret"),
        ("jwks_file = /a\nissuer = i\naudience = a\nbogus = 1\n", "unknown key 'bogus'"),
    ])
    func errorsNameTheFileAndTheFix(text: String, expected: String) {
        do {
            _ = try Self.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }
}
