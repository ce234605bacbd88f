import AuthCore
import Foundation
import Passdb
import Testing

@testable import PassdbSASLDB

@Suite("sasldb store safety")
struct SASLDBSafetyTests {
    @Test func noCleartextUnlessOptedIn() throws {
        let dir = TempDir()
        let path = dir.file("store")
        let password = "Horse-Battery-Staple-93"
        try SASLDBEditor(path: path).add(Fixtures.user("alice@example.org"), password: Secret(password), policy: .importDefault)
        let bytes = Fixtures.storeBytes(path)
        #expect(bytes.count > 1000)
        #expect(!Fixtures.contains(bytes, Array(password.utf8)), "the password must not be in the file")
        #expect(Fixtures.contains(bytes, Array("alice".utf8)), "the check itself sees stored text")

        let optedIn = dir.file("clear")
        try SASLDBEditor(path: optedIn).add(
            Fixtures.user("alice@example.org"), password: Secret(password), policy: SASLDBSecretPolicy(kinds: [.cleartext], hashScheme: .ssha512))
        #expect(Fixtures.contains(Fixtures.storeBytes(optedIn), Array(password.utf8)), "--cleartext stores it (userPassword)")
    }

    @Test func newStoreIsNotReadableByOthers() throws {
        let dir = TempDir()
        let path = dir.file("store")
        // The process umask, read without changing it (other tests create files concurrently).
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let umaskLine = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
        let mask = umaskLine.flatMap { UInt32($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0o022
        try SASLDBEditor(path: path).add(Fixtures.user("a@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        #expect(Fixtures.mode(path) == 0o640 & ~mask)
        #expect(Fixtures.mode(path) & 0o137 == 0, "never more than 0640")
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            #expect(Fixtures.mode(path + suffix) & 0o007 == 0, "\(suffix) has mode \(String(Fixtures.mode(path + suffix), radix: 8))")
        }
    }

    /// Four threads × 50 `add` commands, each its own connection and transaction: 200 users, no lost
    /// write, no "database is locked".
    @Test func concurrentWriterThreads() throws {
        let dir = TempDir()
        let path = dir.file("store")
        let failures = Failures()
        let group = DispatchGroup()
        for t in 0..<4 {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let editor = SASLDBEditor(path: path)
                for i in 0..<50 {
                    do {
                        try editor.add(Fixtures.user("t\(t)-\(i)", "example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
                    } catch {
                        failures.add("\(error)")
                    }
                }
            }
            thread.start()
        }
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        #expect(try SASLDBEditor(path: path).users().count == 200)
        #expect(try Fixtures.integrityCheck(path) == "ok")
    }

    /// Four processes × 50 `add` commands against one store.
    @Test func concurrentWriterProcesses() throws {
        let dir = TempDir()
        let path = dir.file("store")
        let children = try (0..<4).map { p in
            try ChildProcess.spawn(
                role: "writer",
                environment: [ChildProcess.storeVariable: path, ChildProcess.prefixVariable: "p\(p)", ChildProcess.countVariable: "50"])
        }
        // A reader keeps reading meanwhile.
        try SASLDBEditor(path: path).add(Fixtures.user("reader@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        var lines: [String] = []
        for child in children {
            lines += child.readRest()
            #expect(child.wait() == 0)
        }
        let failed = lines.filter { $0.hasPrefix("FAILED") }
        #expect(failed.isEmpty, "\(failed.prefix(3))")
        #expect(lines.filter { $0.hasPrefix("COMMITTED") }.count == 200)
        #expect(lines.filter { $0 == "DONE 0" }.count == 4)
        let users = try SASLDBEditor(path: path).users()
        #expect(users.count == 201)
        #expect(try Fixtures.integrityCheck(path) == "ok")
    }

    /// A writer killed with SIGKILL inside its transaction: the file opens, is intact, keeps every
    /// earlier user and has nothing of the killed command; the next writer is not blocked.
    @Test func killedWriterMidTransaction() async throws {
        let dir = TempDir()
        let path = dir.file("store")
        let editor = SASLDBEditor(path: path)
        try editor.add(Fixtures.user("keep1@example.org"), password: Secret("pw1"), policy: Fixtures.fastAll)
        try editor.add(Fixtures.user("keep2"), password: Secret("pw2"), policy: Fixtures.fastPolicy)
        let db = try Fixtures.passdb(path)
        let before = try editor.list()

        let child = try ChildProcess.spawn(role: "victim-add", environment: [ChildProcess.storeVariable: path])
        #expect(child.readLine() == "READY")
        // The daemon keeps reading while the victim holds the write lock.
        #expect(await db.verifyPlain(Fixtures.request("keep1@example.org"), password: Secret("pw1")) == .ok)
        child.kill9()

        #expect(try Fixtures.integrityCheck(path) == "ok")
        #expect(try editor.list() == before)
        #expect(try !editor.contains(Fixtures.user("victim@example.org")))
        #expect(await db.verifyPlain(Fixtures.request("keep2"), password: Secret("pw2")) == .ok)
        #expect(await db.verifyPlain(Fixtures.request("victim@example.org"), password: Secret("victim-password")) == .userUnknown)
        try SASLDBEditor(path: path, busyTimeout: .seconds(5)).add(Fixtures.user("after@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        #expect(try editor.users().count == 3)
    }

    /// A writer adding users in a loop, killed at an arbitrary moment: every user it reported as
    /// committed is there, and the file is intact.
    @Test(arguments: [3, 17, 40])
    func killedWriterAtARandomMoment(afterCommits: Int) throws {
        let dir = TempDir()
        let path = dir.file("store")
        try SASLDBEditor(path: path).add(Fixtures.user("base@example.org"), password: Secret("pw"), policy: Fixtures.fastPolicy)
        let child = try ChildProcess.spawn(role: "victim-loop", environment: [ChildProcess.storeVariable: path])
        var committed: [String] = []
        while committed.count < afterCommits, let line = child.readLine() {
            if line.hasPrefix("COMMITTED ") { committed.append(String(line.dropFirst(10))) }
        }
        usleep(UInt32.random(in: 0...20_000))
        child.kill9()
        for line in child.readRest() where line.hasPrefix("COMMITTED ") { committed.append(String(line.dropFirst(10))) }
        #expect(committed.count >= afterCommits)

        #expect(try Fixtures.integrityCheck(path) == "ok")
        let users = Set(try SASLDBEditor(path: path).users().map(\.authid))
        #expect(users.contains("base"))
        for name in committed { #expect(users.contains(name), "\(name) was committed but is missing") }
        // At most the one command in flight may have committed without saying so.
        #expect(users.count <= committed.count + 2)
    }
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) {
        lock.lock()
        items.append(s)
        lock.unlock()
    }
    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
