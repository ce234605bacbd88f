import AuthConfig
import Foundation
import Logging
import Passdb
import PassdbPAM
import PassdbRegistry
import Testing

@Suite struct PassdbRegistryTests {
    static let root = #filePath.components(separatedBy: "/Tests/")[0]

    func parse(_ text: String, drivers: PassdbCatalog = PassdbRegistry.catalog) throws(ConfigErrors) -> Settings {
        try Settings.parse(text: text, file: "/etc/saslgate/x.conf", passdbDrivers: drivers)
    }

    func errors(_ text: String, drivers: PassdbCatalog = PassdbRegistry.catalog) -> String {
        do {
            _ = try parse(text, drivers: drivers)
            return "(no error)"
        } catch {
            return error.description
        }
    }

    @Test func theCatalogIsTheTable() {
        #expect(PassdbRegistry.catalog.drivers.map(\.name) == PassdbRegistry.drivers.map(\.name))
        #expect(PassdbRegistry.drivers.map(\.name) == ["passwd-file", "sasldb", "pam", "ldap", "oauth2", "pgsql"])
        #expect(Set(PassdbRegistry.drivers.map(\.name)).count == PassdbRegistry.drivers.count)
    }

    /// Every driver's documented example is a valid `passdbs` entry of that driver; file arguments
    /// are taken relative to the configuration's directory.
    @Test(arguments: PassdbRegistry.drivers.map(\.name))
    func everyDriverParsesItsExample(name: String) throws {
        let driver = try #require(PassdbRegistry.driver(named: name))
        let s = try parse("passdbs = \(driver.info.example)")
        #expect(s.passdbs.count == 1 && s.passdbs.first?.driver == name && s.passdbs.first?.line == 1)
        if driver.info.argument == .secretFile {
            let relative = try parse("passdbs = \(name):data/file")
            #expect(relative.passdbs.first?.argument == "/etc/saslgate/data/file")
        }
    }

    /// The built-in `passdbs` names a driver of the registry and passes its checks.
    @Test func theDefaultChainIsValid() throws {
        let key = try #require(Settings.keys.first { $0.name == "passdbs" })
        let s = try parse("passdbs = \(key.defaultValue)")
        #expect(s.passdbs == Settings().passdbs)
    }

    @Test func anUnknownDriverNamesTheKnownOnes() {
        #expect(errors("listen = /x\npassdbs = nis:/x") == "/etc/saslgate/x.conf:2: unknown passdb driver 'nis'; known: passwd-file, sasldb, pam, ldap, oauth2, pgsql")
        #expect(errors("passdbs = users") == "/etc/saslgate/x.conf:1: passdb 'users' must be 'driver:argument', e.g. passwd-file:/etc/saslgate/users")
        #expect(errors("passdbs = pam:") == "/etc/saslgate/x.conf:1: passdb pam needs an argument (a PAM service name, e.g. pam:smtp)")
    }

    @Test func anUnknownOptionNamesTheKnownOnes() {
        #expect(errors("passdbs = passwd-file:/u{x=1}") == "/etc/saslgate/x.conf:1: passdb passwd-file:/u: unknown option 'x'; passwd-file takes only result_failure=continue|return and result_internalfail=continue|return")
        #expect(errors("\npassdbs = sasldb:/s{strip_realm=all}").hasPrefix("/etc/saslgate/x.conf:2: passdb sasldb:/s: unknown option 'strip_realm'; sasldb takes only result_failure"))
        #expect(errors("passdbs = pam:smtp{colour=blue}") == "/etc/saslgate/x.conf:1: passdb pam:smtp: unknown option 'colour'; pam takes strip_realm=default|all|none, max_concurrency=1-256 (default 8), max_queue=0-65536 (default 256), max_stuck=0-256 (default: max_concurrency), timeout=10ms-9s (default 5s), confdir=an absolute directory (default /etc/pam.d), result_failure=continue|return and result_internalfail=continue|return")
    }

    /// A driver's own checks run when the file is read, with the line (not only when the daemon starts).
    @Test func optionValuesAreCheckedByTheDriver() throws {
        #expect(errors("passdbs = pam:smtp{timeout=20s}").hasPrefix("/etc/saslgate/x.conf:1: passdb pam:smtp: pam: invalid value '20s' for timeout"))
        #expect(errors("passdbs = pam:a/b").hasPrefix("/etc/saslgate/x.conf:1: passdb pam:a/b: pam: invalid PAM service name"))
        let s = try parse("passdbs = pam:smtp{STRIP_REALM = all, result_failure=return}")
        #expect(s.passdbs.first?.options == ["STRIP_REALM": "all"] && s.passdbs.first?.resultFailure == .return)
    }

    /// What the table documents for PAM is what PAM parses.
    @Test func pamOptionsAreDocumented() throws {
        let pam = try #require(PassdbRegistry.driver(named: PAMPassdb.driverName))
        #expect(pam.info.options.map(\.name) == PAMOptions.keys)
    }

    /// The parser knows no driver of its own: it accepts exactly the drivers it is given.
    @Test func theParserChecksAgainstTheCatalogItIsGiven() throws {
        let only = PassdbCatalog([
            PassdbDriverInfo(
                name: "memo", argument: .name(hint: "a word"), options: [.init("size", "N")], example: "memo:a",
                check: { argument, options in
                    argument == "bad" ? "no bad notes" : options["size"] == "0" ? "size must not be 0" : nil
                })
        ])
        let s = try parse("passdbs = memo:notes{size=3}", drivers: only)
        #expect(s.passdbs.first?.argument == "notes" && s.passdbs.first?.options == ["size": "3"])
        #expect(errors("passdbs = memo:x{size=0}", drivers: only) == "/etc/saslgate/x.conf:1: passdb memo:x: size must not be 0")
        #expect(errors("passdbs = memo:bad", drivers: only) == "/etc/saslgate/x.conf:1: passdb memo:bad: no bad notes")
        #expect(errors("passdbs = passwd-file:/u", drivers: only) == "/etc/saslgate/x.conf:1: unknown passdb driver 'passwd-file'; known: memo")
    }

    @Test func secretFilesAndGroupsComeFromTheTable() throws {
        let s = try parse("passdbs = pam:smtp passwd-file:/u sasldb:/s pam:imap")
        #expect(PassdbRegistry.secretFiles(in: s.passdbs).map(\.description) == ["passwd-file:/u", "sasldb:/s"])
        let groups = PassdbRegistry.supplementaryGroups(for: s.passdbs)
        #expect(groups.map(\.driver) == ["pam"] && groups.map(\.group.name) == ["shadow"])
        #expect(PassdbRegistry.supplementaryGroups(for: try parse("passdbs = passwd-file:/u").passdbs).isEmpty)
        #expect(PassdbRegistry.editableDrivers.map(\.name) == ["passwd-file", "sasldb"])
    }

    @Test func openChainOpensEveryPassdbOrNamesTheLine() throws {
        let dir = NSTemporaryDirectory() + "registry-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "a@x:{PLAIN}p\n".write(toFile: dir + "/users", atomically: true, encoding: .utf8)
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let good = try parse("passdbs = passwd-file:\(dir)/users{result_failure=return}")
        let chain = try PassdbRegistry.openChain(good, executor: InlineExecutor(), logger: logger)
        #expect(chain.passdbs.map(\.name) == ["passwd-file:\(dir)/users"])
        #expect(chain.entries.first?.resultFailure == .return)
        let missing = try parse("\npassdbs = passwd-file:\(dir)/nothing")
        #expect(throws: ConfigErrors.self) {
            do {
                _ = try PassdbRegistry.openChain(missing, executor: InlineExecutor(), logger: logger)
            } catch {
                #expect("\(error)".hasPrefix("/etc/saslgate/x.conf:2: passdb passwd-file:\(dir)/nothing: "))
                throw error
            }
        }
    }

    /// The table is the only place that names a driver: outside the driver's own file (its
    /// `driverName`) and the registry, no source holds a driver name or the group it needs as a string.
    @Test func noDriverNameOutsideTheTable() throws {
        let names = PassdbRegistry.drivers.map(\.name) + PassdbRegistry.drivers.flatMap(\.supplementaryGroups).map(\.name)
        let allowed = ["Sources/PassdbRegistry/", "Sources/Passdb/PasswdFilePassdb.swift", "Sources/PassdbSASLDB/SASLDBPassdb.swift",
                       "Sources/PassdbPAM/PAMPassdb.swift", "Sources/PassdbLDAP/LDAPPassdb.swift",
                       "Sources/PassdbOAuth2/OAuth2Passdb.swift",
                       "Sources/PassdbPgSQL/PgSQLPassdb.swift"]
        let sources = Self.root + "/Sources"
        let files = try FileManager.default.subpathsOfDirectory(atPath: sources).filter { $0.hasSuffix(".swift") }
        var found: [String] = []
        for file in files where !allowed.contains(where: { ("Sources/" + file).hasPrefix($0) }) {
            let text = try String(contentsOfFile: sources + "/" + file, encoding: .utf8)
            for name in names where text.contains("\"\(name)\"") { found.append("\(file): \"\(name)\"") }
        }
        #expect(found == [])
    }
}
