import AuthConfig
import Foundation
import PassdbRegistry
import Testing

@Suite struct ConfigKeyTests {
    static let root = #filePath.components(separatedBy: "/Tests/")[0]

    /// `#name = value` lines of the documented example, in file order.
    static func documentedKeys() throws -> [(name: String, line: String)] {
        let text = try String(contentsOfFile: root + "/conf/saslgated.conf", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("#"), line.dropFirst().first?.isLowercase == true, let eq = line.firstIndex(of: "=") else { return nil }
            let name = line[line.index(after: line.startIndex)..<eq].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.allSatisfy({ $0.isLowercase || $0 == "_" }) else { return nil }
            return (name, String(line))
        }
    }

    /// Every key is documented with its real default as `#key = value`, once, in the table's order, and
    /// the example documents no key the daemon does not know.
    @Test func exampleFileDocumentsEveryKeyWithItsDefault() throws {
        let documented = try Self.documentedKeys()
        #expect(documented.map(\.name) == Settings.keys.map(\.name))
        for key in Settings.keys {
            let expected = key.defaultValue.isEmpty ? "#\(key.name) =" : "#\(key.name) = \(key.defaultValue)"
            #expect(documented.first { $0.name == key.name }?.line == expected, "conf/saslgated.conf must show \(expected)")
        }
    }

    @Test func knownKeysComeFromTheTable() {
        #expect(Settings.knownKeys == Settings.keys.map(\.name))
        #expect(Set(Settings.knownKeys).count == Settings.knownKeys.count, "a key is listed twice")
        #expect(Settings.keys.allSatisfy { !$0.summary.isEmpty && !$0.summary.contains("\n") })
    }

    /// Every property of `Settings` is set by the key of the same name (`authCacheTTL` by
    /// `auth_cache_ttl`): a property without a key would keep a value no file can change.
    @Test func everySettingHasAKey() {
        func snakeCase(_ name: String) -> String {
            var out = ""
            var previous: Character?
            for c in name {
                if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { out.append("_") }
                out.append(Character(c.lowercased()))
                previous = c
            }
            return out
        }
        let properties = Mirror(reflecting: Settings()).children.compactMap(\.label).filter { $0 != "file" && $0 != "lines" }
        #expect(Set(properties.map(snakeCase)) == Set(Settings.knownKeys))
    }

    /// The defaults pass their own checks and are what `Settings()` holds.
    @Test func defaultsAreReadLikeAFile() throws {
        let text = Settings.keys.map { "\($0.name) = \($0.defaultValue)" }.joined(separator: "\n")
        var explicit = try Settings.parse(text: text, file: "/etc/saslgate/saslgated.conf", passdbDrivers: PassdbRegistry.catalog)
        explicit.file = Settings().file
        #expect(explicit == Settings())
        #expect(Settings().failureDelay == 2 && Settings().passdbs.map(\.description) == ["passwd-file:/etc/saslgate/users"])
    }

    /// Range messages are written from the table's bounds.
    @Test(arguments: [
        ("penalty_cooldown = 2d", "x.conf:1: penalty_cooldown '2d' must be a duration from 0 to 1 day (0 disables cool-downs)"),
        ("auth_cache_ttl = 8d", "x.conf:1: auth_cache_ttl '8d' must be a duration from 0 to 7 days"),
        ("handshake_timeout = 0", "x.conf:1: handshake_timeout '0' must be a duration from 1s to 10m"),
        ("hash_threads = 257", "x.conf:1: hash_threads '257' must be a number from 0 to 256 (0: one per core)"),
        ("listen =", "x.conf:1: listen needs a socket path"),
        ("log_level = loud", "x.conf:1: log_level 'loud' must be debug, info, notice, warning or error"),
        ("authz_rules = a@x=>*, nonsense", "x.conf:1: authz_rules: 'nonsense' must be AUTHCID=>AUTHZID"),
    ])
    func valueErrors(text: String, expected: String) {
        #expect(throws: ConfigErrors.self) {
            do {
                _ = try Settings.parse(text: text, file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
            } catch {
                #expect("\(error)".hasPrefix(expected), "got: \(error)")
                throw error
            }
        }
    }

    @Test func aMisspeltKeyIsExplained() {
        do {
            _ = try Settings.parse(text: "failure_dely = 1s", file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "x.conf:1: unknown parameter 'failure_dely'; did you mean 'failure_delay'? (the delay before a failure is answered)")
        }
    }

    @Test func theLineOfEveryKeyIsKept() throws {
        let s = try Settings.parse(
            text: "# c\nlisten = /x\n\nclient_allowlist = postfix\n  root\n", file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
        #expect(s.lines["listen"] == 2 && s.lines["client_allowlist"] == 4 && s.lines["passdbs"] == nil)
        #expect(s.clientAllowlist == ["postfix", "root"])
        // Where a key was written does not change what the settings mean.
        var moved = try Settings.parse(text: "\n\nlisten = /x\nclient_allowlist = postfix root\n", file: "x.conf", passdbDrivers: PassdbRegistry.catalog)
        moved.file = s.file
        #expect(moved == s)
    }
}
