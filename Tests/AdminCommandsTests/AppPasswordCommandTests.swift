import Foundation
import Testing

@testable import AdminCommands

/// `saslgate app-password add|list|revoke` in-process.
@Suite struct AppPasswordCommandTests {
    @Test func addListRevoke() throws {
        let dir = TempDir()
        let db = "sasldb:" + dir.file("store")
        #expect(saslgate(["user", "add", "--db", db, "--scheme", "SSHA512", "--password-stdin", "alice@example.org"], stdin: "Main-pw-1").code == 0)
        let add = saslgate(["app-password", "add", "--db", db, "alice@example.org", "--name", "phone", "--services", "SMTP,imap", "--expires", "90d"])
        #expect(add.code == 0)
        let secret = add.out.trimmingCharacters(in: .newlines)
        #expect(secret.range(of: #"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$"#, options: .regularExpression) != nil, "only the password on stdout")
        #expect(add.err.contains("added app password 'phone'") && add.err.contains("services: imap,smtp"))
        #expect(!add.err.contains(secret))

        let list = saslgate(["app-password", "list", "--db", db, "-u", "example.org", "alice"])
        #expect(list.code == 0)
        let lines = list.out.split(separator: "\n")
        #expect(lines.first == "NAME\tSERVICES\tCREATED\tEXPIRES\tLAST-USED\tLAST-IP")
        #expect(lines.count == 2 && lines[1].hasPrefix("phone\timap,smtp\t") && lines[1].hasSuffix("\tnever\t-"))
        #expect(!list.out.contains(secret))

        #expect(saslgate(["app-password", "add", "--db", db, "alice@example.org", "--name", "phone"]).code == 1)
        #expect(saslgate(["app-password", "add", "--db", db, "bob@example.org", "--name", "phone"]).code == 1)
        let bad = saslgate(["app-password", "add", "--db", db, "alice@example.org", "--name", "x", "--expires", "soon"])
        #expect(bad.code == 2 && bad.err.contains("--expires 'soon' must be a lifetime like 90d"))
        #expect(saslgate(["app-password", "revoke", "--db", db, "alice@example.org", "phone"]).code == 0)
        #expect(saslgate(["app-password", "revoke", "--db", db, "alice@example.org", "phone"]).code == 1)
        #expect(saslgate(["app-password", "list", "--db", db, "alice@example.org"]).out.split(separator: "\n").count == 1)
    }

    @Test func refusesAPasswdFile() {
        let dir = TempDir()
        let r = saslgate(["app-password", "list", "--file", dir.write("users", "a@example.org:{PLAIN}x\n"), "a@example.org"])
        #expect(r.code == 2 && r.err.contains("app passwords live in a sasldb store"))
    }

    @Test func lifetimes() throws {
        #expect(try AppPasswordActions.lifetime("90d") == 90 * 86400)
        #expect(try AppPasswordActions.lifetime("2w") == 2 * 604_800)
        #expect(throws: CLIError.self) { try AppPasswordActions.lifetime("0d") }
        #expect(throws: CLIError.self) { try AppPasswordActions.lifetime("99999d") }
        #expect(AppPasswordActions.date(0) == "1970-01-01T00:00Z")
    }
}
