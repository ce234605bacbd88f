import AuthCore
import Testing

@testable import Passdb

#if canImport(Glibc)
import Glibc
#endif

@Suite("passwd-file editor")
struct PasswdFileEditorTests {
    static let original = """
        # users of example.com
        #   keep this comment exactly:  tabs\there
        alice@example.com:{PLAIN}one:1000:1000:Alice::/bin/false:allow_nets=10.0.0.0/8

        bob@example.com:{PLAIN}two
        # trailing comment

        """

    @Test func addAppendsAndKeepsEverythingElse() throws {
        let dir = TempDir()
        let path = dir.write("users", Self.original)
        let editor = PasswdFileEditor(path: path)
        try editor.add(user: "carol@example.com", passwordField: "{PLAIN}three")
        #expect(readText(path) == Self.original + "carol@example.com:{PLAIN}three\n")
        #expect(try editor.listUsers() == ["alice@example.com", "bob@example.com", "carol@example.com"])
        #expect(fileMode(path) == 0o640)
        #expect(entries(dir.path) == ["users", "users.lock"], "no temporary file left behind")
    }

    /// Someone who may write to the table's directory plants a symbolic link at the name the editor's
    /// temporary file used to have (`PATH.tmp.<pid>`), pointing at another file: the link is neither
    /// followed nor replaced, the edit succeeds, and no temporary file stays behind.
    @Test func aLinkPlantedAtTheOldTemporaryNameIsLeftAlone() throws {
        let dir = TempDir()
        let path = dir.write("users", "a:{PLAIN}1\n")
        let victim = dir.write("victim", "precious\n", mode: 0o600)
        let planted = path + ".tmp.\(getpid())"
        #expect(symlink(victim, planted) == 0)
        try PasswdFileEditor(path: path).add(user: "b", passwordField: "{PLAIN}2")
        #expect(readText(path) == "a:{PLAIN}1\nb:{PLAIN}2\n")
        #expect(readText(victim) == "precious\n")
        #expect(fileMode(victim) == 0o600)
        var st = stat()
        #expect(lstat(planted, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK)
        #expect(entries(dir.path) == ["users", "users.lock", "users.tmp.\(getpid())", "victim"])
    }

    /// The names in a directory, sorted, without `.` and `..`.
    func entries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    @Test func addRefusesAnExistingUserInAnyRealmSpelling() throws {
        let dir = TempDir()
        let path = dir.write("users", Self.original)
        let editor = PasswdFileEditor(path: path)
        #expect(throws: PasswdFileEditError.userExists(user: "bob@EXAMPLE.com", path: path, line: 5)) {
            try editor.add(user: "bob@EXAMPLE.com", passwordField: "{PLAIN}x")
        }
        #expect(readText(path) == Self.original)
        // With a default realm, a bare name is the same user.
        let withRealm = PasswdFileEditor(path: path, defaultRealm: "example.com")
        #expect(throws: PasswdFileEditError.self) { try withRealm.add(user: "bob", passwordField: "{PLAIN}x") }
        // Another local-part case is another user.
        try editor.add(user: "Bob@example.com", passwordField: "{PLAIN}x")
    }

    @Test func addToAFileWithoutFinalNewline() throws {
        let dir = TempDir()
        let path = dir.write("users", "a:{PLAIN}1")
        try PasswdFileEditor(path: path).add(user: "b", passwordField: "{PLAIN}2")
        #expect(readText(path) == "a:{PLAIN}1\nb:{PLAIN}2\n")
    }

    @Test func addCreatesAMissingFileWithMode0640() throws {
        let dir = TempDir()
        let path = dir.file("new-users")
        try PasswdFileEditor(path: path).add(user: "a@x.org", passwordField: "{PLAIN}1")
        #expect(readText(path) == "a@x.org:{PLAIN}1\n")
        #expect(fileMode(path) == 0o640)
    }

    @Test func setPasswordReplacesOnlyThePasswordField() throws {
        let dir = TempDir()
        let path = dir.write("users", Self.original, mode: 0o600)
        chmod(path, 0o600)
        let editor = PasswdFileEditor(path: path)
        try editor.setPassword(
            user: "alice@EXAMPLE.COM", passwordField: "{SSHA256}O7/uJqEKwS3uGnPFQfpcmeetx4MYvKIV1+htHaRxk8czrnQk")
        let expected = Self.original.replacing(
            "alice@example.com:{PLAIN}one:",
            with: "alice@example.com:{SSHA256}O7/uJqEKwS3uGnPFQfpcmeetx4MYvKIV1+htHaRxk8czrnQk:"
        )
        #expect(readText(path) == expected)
        #expect(fileMode(path) == 0o600)
        let table = try PasswdFile.load(path: path)
        #expect(table.password(forUser: "alice@example.com")?.verify(Secret("pencil"), user: "") == .match)
    }

    @Test func setPasswordAndDeleteFailOnAMissingUser() throws {
        let dir = TempDir()
        let path = dir.write("users", Self.original)
        let editor = PasswdFileEditor(path: path)
        #expect(throws: PasswdFileEditError.userNotFound(user: "zed", path: path)) {
            try editor.setPassword(user: "zed", passwordField: "{PLAIN}x")
        }
        #expect(throws: PasswdFileEditError.userNotFound(user: "zed", path: path)) { try editor.delete(user: "zed") }
        #expect(throws: PasswdFileEditError.userNotFound(user: "zed", path: dir.file("nope"))) {
            try PasswdFileEditor(path: dir.file("nope")).delete(user: "zed")
        }
        #expect(readText(path) == Self.original)
        #expect(PasswdFileEditError.userNotFound(user: "zed", path: path).isRefusal)
    }

    @Test func deleteRemovesExactlyOneLine() throws {
        let dir = TempDir()
        let path = dir.write("users", Self.original)
        let editor = PasswdFileEditor(path: path)
        try editor.delete(user: "alice@example.com")
        #expect(
            readText(path)
                == Self.original.replacing(
                    "alice@example.com:{PLAIN}one:1000:1000:Alice::/bin/false:allow_nets=10.0.0.0/8\n", with: ""))
        try editor.delete(user: "bob@example.com")
        #expect(
            readText(path)
                == "# users of example.com\n#   keep this comment exactly:  tabs\there\n\n# trailing comment\n")
        #expect(try editor.listUsers().isEmpty)
    }

    @Test func deleteTheLastLineWithoutNewlineAndCRLF() throws {
        let dir = TempDir()
        let path = dir.write("users", "a:{PLAIN}1\r\nb:{PLAIN}2\r\nc:{PLAIN}3")
        let editor = PasswdFileEditor(path: path)
        try editor.delete(user: "c")
        #expect(readText(path) == "a:{PLAIN}1\r\nb:{PLAIN}2\r\n")
        try editor.delete(user: "a")
        #expect(readText(path) == "b:{PLAIN}2\r\n")
        try editor.setPassword(user: "b", passwordField: "{PLAIN}9")
        #expect(readText(path) == "b:{PLAIN}9\r\n")
    }

    @Test func refusesToEditABrokenFile() throws {
        let dir = TempDir()
        let path = dir.write("users", "a:{PLAIN}1\ngarbage\n")
        do {
            try PasswdFileEditor(path: path).add(user: "b", passwordField: "{PLAIN}2")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("\(path):2: no ':' after the user name"))
            #expect(!error.isRefusal)
        }
        #expect(readText(path) == "a:{PLAIN}1\ngarbage\n")
    }

    @Test("invalid user names are refused", arguments: ["", "a b", "a:b", "#a", "@x.org", "a@", "tab\tx", "nl\nx"])
    func invalidUserNames(user: String) {
        let dir = TempDir()
        #expect(throws: PasswdFileEditError.self) {
            try PasswdFileEditor(path: dir.file("users")).add(user: user, passwordField: "{PLAIN}x")
        }
    }

    @Test(
        "invalid password fields are refused", arguments: ["", "{PLAIN}", "{NOPE}x", "{PLAIN}a:b", "{PLAIN}a\nb:c:d"])
    func invalidFields(field: String) {
        let dir = TempDir()
        #expect(throws: PasswdFileEditError.self) {
            try PasswdFileEditor(path: dir.file("users")).add(user: "a", passwordField: field)
        }
        #expect(readFile(dir.file("users")) == nil)
    }

    @Test func followsASymlink() throws {
        let dir = TempDir()
        let real = dir.write("real-users", "a:{PLAIN}1\n")
        let link = dir.file("users")
        symlink(real, link)
        try PasswdFileEditor(path: link).add(user: "b", passwordField: "{PLAIN}2")
        var st = stat()
        lstat(link, &st)
        #expect((st.st_mode & S_IFMT) == S_IFLNK)
        #expect(readText(real) == "a:{PLAIN}1\nb:{PLAIN}2\n")
    }

    @Test func concurrentEditorsLoseNothing() async throws {
        let dir = TempDir()
        let path = dir.write("users", "# shared table\n")
        let threads = 8
        let perThread = 50
        await withTaskGroup(of: [String].self) { group in
            for t in 0..<threads {
                group.addTask {
                    // Each task runs its blocking edits on its own thread.
                    await withCheckedContinuation { (c: CheckedContinuation<[String], Never>) in
                        runOnBackgroundThread {
                            var errors: [String] = []
                            let editor = PasswdFileEditor(path: path)
                            for i in 0..<perThread {
                                do {
                                    try editor.add(user: "t\(t)u\(i)@example.com", passwordField: "{PLAIN}p\(i)")
                                } catch {
                                    errors.append("\(error)")
                                }
                            }
                            c.resume(returning: errors)
                        }
                    }
                }
            }
            for await errors in group { #expect(errors.isEmpty) }
        }
        let table = try PasswdFile.load(path: path)
        #expect(table.count == threads * perThread)
        for t in 0..<threads {
            for i in 0..<perThread { #expect(table.contains(user: "t\(t)u\(i)@example.com")) }
        }
        #expect(readText(path)?.hasPrefix("# shared table\n") == true)
    }
}
