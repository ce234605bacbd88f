import Foundation
import AuthConfig
import PassdbRegistry
import Testing

@Suite struct SettingsTests {
    @Test func defaultsAndFullFile() throws {
        let text = """
            # comment
            listen = /run/x/auth
            listen_mode = 0600
            listen_user = postfix
            mechanisms = plain
              login
            passdbs = passwd-file:users, passwd-file:/etc/other
            default_realm = Example.ORG
            failure_delay = 500ms
            cleartext_requires_tls = no
            request_timeout = 2m
            """
        let s = try Settings.parse(text: text, file: "/etc/saslgate/saslgated.conf", passdbDrivers: PassdbRegistry.catalog)
        #expect(s.listen == [.unix(path: "/run/x/auth")])
        #expect(s.listenMode == 0o600)
        #expect(s.mechanisms == ["PLAIN", "LOGIN"])
        #expect(s.passdbs.map(\.description) == ["passwd-file:/etc/saslgate/users", "passwd-file:/etc/other"])
        #expect(s.passdbs.first?.line == 7)
        #expect(s.defaultRealm == "example.org")
        #expect(s.failureDelay == 0.5)
        #expect(s.cleartextRequiresTLS == false)
        #expect(s.requestTimeout == 120)
        #expect(s.listenGroup == "postfix")  // default kept
        #expect(s.maxPendingRequests == 1024)
    }

    @Test(arguments: [
        ("passdbs = passwd-file:/u\nfoo = 1", "x.conf:2: unknown parameter 'foo'"),
        ("passdbs = passwd-file:/u\nmechanism = plain", "x.conf:2: unknown parameter 'mechanism'; did you mean 'mechanisms'?"),
        ("passdbs = passwd-file:/u\nlisten_mode = 999", "x.conf:2: listen_mode '999' is not an octal mode"),
        ("passdbs = passwd-file:/u\nfailure_delay = 20s", "x.conf:2: failure_delay '20s' must be a duration from 0 to 5s"),
        ("passdbs = passwd-file:/u\ncleartext_requires_tls = maybe", "x.conf:2: cleartext_requires_tls must be yes or no"),
        ("passdbs = nis:/x", "x.conf:1: unknown passdb driver 'nis'"),
        ("passdbs = passwd-file", "x.conf:1: passdb 'passwd-file' must be 'driver:argument'"),
        ("passdbs = passwd-file:/u\npassdbs = passwd-file:/v", "x.conf:2: 'passdbs' is already set on line 1"),
        ("  passdbs = passwd-file:/u", "x.conf:1: continuation line without a preceding"),
        ("passdbs passwd-file:/u", "x.conf:1: expected 'name = value'"),
        ("passdbs =", "x.conf:1: passdbs is empty"),
        ("passdbs = passwd-file:/u\nmechanisms = plain plain", "x.conf:2: mechanism PLAIN is listed twice"),
        ("passdbs = passwd-file:/u\ndefault_realm = a@b", "x.conf:3: default_realm"),
    ])
    func errorsNameFileAndLine(text: String, expectedPrefix: String) {
        do {
            _ = try Settings.parse(text: text, file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
            Issue.record("expected an error for \(text.debugDescription)")
        } catch {
            let message = error.description
            let prefix = expectedPrefix.replacingOccurrences(of: "x.conf:3: default_realm", with: "x.conf:2: default_realm")
            #expect(message.hasPrefix(prefix), "got: \(message)")
        }
    }

    @Test func allErrorsAreReportedAtOnce() {
        do {
            _ = try Settings.parse(text: "passdbs = passwd-file:/u\nfoo = 1\nbar = 2", file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.count == 2)
        }
    }

    @Test func missingFileNamesIt() {
        #expect(throws: ConfigErrors.self) { try Settings.load(path: "/nonexistent/saslgated.conf", passdbDrivers: PassdbRegistry.catalog) }
    }

    @Test func shippedExampleConfigsParse() throws {
        // The documented example (all defaults commented out) needs passdbs from the user; the dev one is complete.
        let root = #filePath.components(separatedBy: "/Tests/")[0]
        let dev = try Settings.load(path: root + "/conf/dev/saslgated.conf", passdbDrivers: PassdbRegistry.catalog)
        #expect(dev.passdbs.first?.argument == root + "/conf/dev/users")
        #expect(dev.listen == [.unix(path: root + "/conf/dev/../../.run/auth-client")])
        // Every setting of the documented example is commented out: it must equal the defaults.
        var example = try Settings.load(path: root + "/conf/saslgated.conf", passdbDrivers: PassdbRegistry.catalog)
        example.file = Settings().file
        #expect(example == Settings())
        // ...and uncommenting every documented default must give the same settings.
        let text = try String(contentsOfFile: root + "/conf/saslgated.conf", encoding: .utf8)
        let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("#") && line.dropFirst().first?.isLetter == true && line.contains(" = ") ? String(line.dropFirst()) : String(line)
        }.joined(separator: "\n")
        var explicit = try Settings.parse(text: uncommented, file: "/etc/saslgate/saslgated.conf", passdbDrivers: PassdbRegistry.catalog)
        explicit.file = Settings().file
        #expect(explicit == Settings())
    }
}
