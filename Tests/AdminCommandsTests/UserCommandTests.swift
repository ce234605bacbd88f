import ArgumentParser
import AuthCore
import Passdb
import Testing

@testable import AdminCommands

@Suite("saslgate user / pw")
struct UserCommandTests {
    // MARK: argument parsing

    @Test func parsesUserAdd() throws {
        let parsed = try SaslgateCommand.parseAsRoot([
            "user", "add", "--file", "/x/users", "--scheme", "ssha512", "--password-stdin", "bob@example.com",
        ])
        let add = try #require(parsed as? UserAddCommand)
        #expect(add.user == "bob@example.com")
        #expect(add.table.file == "/x/users")
        #expect(add.password.scheme.scheme == .ssha512)
        #expect(add.password.passwordStdin)
        #expect(try add.table.resolve() == TableLocation(path: "/x/users", defaultRealm: nil))
    }

    @Test func parsesDefaults() throws {
        let add = try #require(
            try SaslgateCommand.parseAsRoot(["user", "add", "-c", "/etc/x.conf", "bob"]) as? UserAddCommand)
        #expect(add.password.scheme.scheme == .crypt)
        #expect(!add.password.passwordStdin)
        #expect(add.table.config == "/etc/x.conf")
        #expect(
            try #require(try SaslgateCommand.parseAsRoot(["user", "list", "-f", "u"]) as? UserListCommand).table.file
                == "u")
        #expect(
            try #require(try SaslgateCommand.parseAsRoot(["user", "del", "-f", "u", "x"]) as? UserDelCommand).user
                == "x")
        #expect(
            try #require(try SaslgateCommand.parseAsRoot(["user", "passwd", "-f", "u", "x"]) as? UserPasswdCommand).user
                == "x")
    }

    @Test(
        "scheme names",
        arguments: [
            ("yescrypt", PasswordScheme.crypt), ("CRYPT", .crypt), ("sha512-crypt", .sha512Crypt),
            ("{SHA256-CRYPT}", .sha256Crypt),
            ("BLF-CRYPT", .blfCrypt), ("ssha256", .ssha256), ("PLAIN", .plain), ("scram-sha-256", .scramSHA256),
        ])
    func schemeNames(name: String, scheme: PasswordScheme) {
        #expect(SchemeArgument(argument: name)?.scheme == scheme)
    }

    @Test(
        "usage errors exit 2",
        arguments: [
            ["user", "add", "--file", "u"],  // no USER
            ["user", "add", "--file", "u", "--config", "c", "bob"],  // both
            ["user", "add", "--file", "u", "--scheme", "md5-crypt", "bob"],  // verify-only scheme
            ["user", "add", "--file", "u", "--scheme", "rot13", "bob"],
            ["user", "add", "--file", "u", "--password", "x", "bob"],  // no password option in argv
            ["user", "frobnicate"],
            ["pw", "--scheme", "nope"],
            ["auth", "test", "--mech", "cram-md5", "bob"],
        ])
    func usageErrors(arguments: [String]) {
        let r = saslgate(arguments, stdin: "pw")
        #expect(r.code == 2)
        #expect(!r.err.isEmpty)
    }

    @Test func helpExitsZero() {
        let r = saslgate(["user", "add", "--help"])
        #expect(r.code == 0)
        #expect(r.out.contains("--password-stdin"))
    }

    // MARK: add / passwd / del / list through the CLI

    @Test func addThenVerify() throws {
        let dir = TempDir()
        let users = dir.write("users", "# users\n")
        let r = saslgate(["user", "add", "--file", users, "--password-stdin", "bob@example.com"], stdin: "Tr0ub4dor&3")
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out == "added user 'bob@example.com' to \(users)")
        #expect(!r.all.contains("Tr0ub4dor"))
        let table = try PasswdFile.load(path: users)
        let stored = try #require(table.password(forUser: "bob@example.com"))
        #expect(stored.scheme == .crypt)
        #expect(stored.verify(Secret("Tr0ub4dor&3"), user: "bob@example.com") == .match)
        #expect(dir.read("users")?.hasPrefix("# users\nbob@example.com:{CRYPT}$y$") == true)
    }

    @Test func addExistingIsRefusedWithExit1() {
        let dir = TempDir()
        let users = dir.write("users", "bob@example.com:{PLAIN}x\n")
        let r = saslgate(["user", "add", "-f", users, "--password-stdin", "bob@EXAMPLE.com"], stdin: "secretpw")
        #expect(r.code == 1)
        #expect(r.err.contains("already exists"))
        #expect(dir.read("users") == "bob@example.com:{PLAIN}x\n")
    }

    @Test func passwdAndDelOfMissingUserExit1() {
        let dir = TempDir()
        let users = dir.write("users", "bob:{PLAIN}x\n")
        let p = saslgate(["user", "passwd", "-f", users, "--password-stdin", "alice"], stdin: "secretpw")
        #expect(p.code == 1)
        #expect(p.err.contains("'alice' is not in"))
        let d = saslgate(["user", "del", "-f", users, "alice"])
        #expect(d.code == 1)
        #expect(dir.read("users") == "bob:{PLAIN}x\n")
    }

    @Test func passwdKeepsOtherFieldsAndDelRemoves() throws {
        let dir = TempDir()
        let users = dir.write("users", "# c\nbob:{PLAIN}x:1:2:gecos\ncarol:{PLAIN}y\n")
        let p = saslgate(
            ["user", "passwd", "-f", users, "--scheme", "SSHA512", "--password-stdin", "bob"], stdin: "n3wpassword")
        #expect(p.code == 0, "\(p.err)")
        let text = try #require(dir.read("users"))
        #expect(text.hasPrefix("# c\nbob:{SSHA512}"))
        #expect(text.hasSuffix(":1:2:gecos\ncarol:{PLAIN}y\n"))
        #expect(!p.all.contains("n3wpassword"))
        let d = saslgate(["user", "del", "-f", users, "carol"])
        #expect(d.code == 0)
        #expect(d.out == "deleted user 'carol' from \(users)")
        #expect(dir.read("users")?.hasSuffix(":1:2:gecos\n") == true)
    }

    @Test func listPrintsNamesOnly() {
        let dir = TempDir()
        let users = dir.write(
            "users", "# c\nbob:{PLAIN}hunter2\ncarol@x.org:{SSHA256}O7/uJqEKwS3uGnPFQfpcmeetx4MYvKIV1+htHaRxk8czrnQk\n")
        let r = saslgate(["user", "list", "-f", users])
        #expect(r.code == 0)
        #expect(r.out == "bob\ncarol@x.org")
        #expect(!r.all.contains("hunter2") && !r.all.contains("{"))
    }

    @Test func listOfABrokenFileShowsFileAndLine() {
        let dir = TempDir()
        let users = dir.write("users", "bob:{PLAIN}hunter2\nbroken hunter3\n")
        let r = saslgate(["user", "list", "-f", users])
        #expect(r.code == 2)
        #expect(r.err.contains("\(users):2: "))
        #expect(!r.all.contains("hunter"))
    }

    @Test func listOfAMissingFileIsAnError() {
        let dir = TempDir()
        let r = saslgate(["user", "list", "-f", dir.file("nope")])
        #expect(r.code == 2)
        #expect(r.err.contains("No such file"))
    }

    // MARK: passwords

    @Test func promptsTwiceOnTheTerminal() throws {
        let dir = TempDir()
        let users = dir.file("users")
        let terminal = FakeTerminal(tty: ["sw0rdfish", "sw0rdfish"])
        let code = CommandIO.$current.withValue(terminal.io) {
            SaslgateMain.run(arguments: ["user", "add", "-f", users, "ann"])
        }
        #expect(code == 0)
        #expect(terminal.prompts == ["New password: ", "Retype new password: "])
        #expect(!terminal.out.contains("sw0rdfish"))
        #expect(
            try PasswdFile.load(path: users).password(forUser: "ann")?.verify(Secret("sw0rdfish"), user: "ann")
                == .match)
    }

    @Test func mismatchedPromptsChangeNothing() {
        let dir = TempDir()
        let users = dir.write("users", "")
        let r = saslgate(["user", "add", "-f", users, "ann"], tty: ["one-pass", "two-pass"])
        #expect(r.code == 2)
        #expect(r.err == "saslgate: the two passwords do not match; nothing was changed")
        #expect(!r.all.contains("-pass"))
        #expect(dir.read("users") == "")
    }

    @Test("empty or missing passwords are refused", arguments: [Optional(""), nil])
    func emptyPasswords(stdin: String?) {
        let dir = TempDir()
        let users = dir.write("users", "")
        let r = saslgate(["user", "add", "-f", users, "--password-stdin", "ann"], stdin: stdin)
        #expect(r.code == 2)
        #expect(dir.read("users") == "")
        let t = saslgate(["user", "add", "-f", users, "ann"], tty: ["", ""])
        #expect(t.code == 2)
        #expect(t.err == "saslgate: empty password refused")
    }

    @Test func noTerminalSaysUsePasswordStdin() {
        let dir = TempDir()
        let r = saslgate(["user", "add", "-f", dir.file("users"), "ann"])
        #expect(r.code == 2)
        #expect(r.err.contains("no terminal"))
    }

    @Test func plainWarnsAndRefusesAColon() {
        let dir = TempDir()
        let users = dir.write("users", "")
        let ok = saslgate(
            ["user", "add", "-f", users, "--scheme", "PLAIN", "--password-stdin", "ann"], stdin: "clear-pw")
        #expect(ok.code == 0)
        #expect(ok.err.contains("warning: {PLAIN} keeps the password in clear text"))
        let colon = saslgate(
            ["user", "add", "-f", users, "--scheme", "PLAIN", "--password-stdin", "bea"], stdin: "a:b")
        #expect(colon.code == 2)
        #expect(colon.err.contains("cannot hold ':'"))
        #expect(!colon.err.contains("a:b"))
    }

    @Test func invalidUserNameExit2() {
        let dir = TempDir()
        let r = saslgate(["user", "add", "-f", dir.file("users"), "--password-stdin", "bad:name"], stdin: "pw123456")
        #expect(r.code == 2)
        #expect(r.err.contains("invalid user name"))
    }

    // MARK: the configuration

    @Test func tableFromTheConfiguration() throws {
        let dir = TempDir()
        dir.write("users", "bob@example.com:{PLAIN}x\n")
        let config = dir.write(
            "saslgated.conf",
            """
            # saslgated
            listen = /run/saslgated/auth-client
            passdbs = pam:smtp{strip_realm = all},
                passwd-file:./users{result_failure=return}
            default_realm = Example.com

            """
        )
        let lookup = try ConfigLookup.load(path: config)
        #expect(try lookup.firstEditableStore().spec.argument == dir.file("users"))
        #expect(try lookup.firstEditableStore().editor == .passwdFile)
        #expect(lookup.defaultRealm == "example.com")  // realms are compared lower-case
        // The bare name is bob@example.com through default_realm: refused as existing.
        let r = saslgate(["user", "add", "-c", config, "--password-stdin", "bob"], stdin: "pw123456")
        #expect(r.code == 1, "\(r.err)")
        let list = saslgate(["user", "list", "-c", config])
        #expect(list.out == "bob@example.com")
    }

    @Test(
        "configuration problems exit 2",
        arguments: [
            ("passdbs = pam:smtp\n", "no passwd-file: or sasldb: entry"),
            ("passdbs = pam:smtp{confdir=/passwd-file:/y}\n", "no passwd-file: or sasldb: entry"),
            ("passdbs = pam:smtp{x=1}\n", ":1: passdb pam:smtp: unknown option 'x'; pam takes strip_realm="),
            ("passdbs = passwd-file:\n", ":1: passdb passwd-file needs an argument"),
            ("  passdbs = passwd-file:/x\n", ":1: continuation line without"),
            ("passdbs passwd-file:/x\n", ":1: expected 'name = value'"),
        ])
    func configProblems(text: String, message: String) {
        let dir = TempDir()
        let config = dir.write("c.conf", text)
        let r = saslgate(["user", "list", "-c", config])
        #expect(r.code == 2)
        #expect(r.err.contains(message), "\(r.err)")
    }

    @Test func passdbsDefaultsToTheDaemonsDefault() throws {
        let lookup = try ConfigLookup.parse("listen = /x\n", path: "/etc/saslgate/saslgated.conf")
        #expect(try lookup.firstEditableStore().spec.argument == "/etc/saslgate/users")
        #expect(lookup.listenPath == "/x")
    }

    @Test func missingConfiguration() {
        let r = saslgate(["user", "list", "-c", "/nonexistent/saslgated.conf"])
        #expect(r.code == 2)
        #expect(r.err.contains("/nonexistent/saslgated.conf: cannot read: No such file or directory"))
    }

    // MARK: pw

    @Test(
        "pw prints a field that verifies",
        arguments: ["CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "SSHA512", "SSHA256", "SCRAM-SHA-256"])
    func pw(scheme: String) throws {
        let r = saslgate(["pw", "--scheme", scheme, "--password-stdin"], stdin: "horse battery")
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.hasPrefix("{\(scheme)}"))
        #expect(!r.out.contains("horse"))
        #expect(try StoredPassword(field: r.out).verify(Secret("horse battery"), user: "") == .match)
    }

    @Test func pwDefaultIsYescrypt() {
        let r = saslgate(["pw", "--password-stdin"], stdin: "x1y2z3")
        #expect(r.code == 0)
        #expect(r.out.hasPrefix("{CRYPT}$y$"))
    }

    @Test func pwDigestNeedsUser() {
        #expect(saslgate(["pw", "--scheme", "DIGEST-MD5", "--password-stdin"], stdin: "pencil").code == 2)
        let r = saslgate(
            ["pw", "--scheme", "DIGEST-MD5", "--user", "bob@example.com", "--password-stdin"], stdin: "pencil")
        #expect(r.out == "{DIGEST-MD5}e77b335a942b47d2d097d705695ea57b")
    }
}
