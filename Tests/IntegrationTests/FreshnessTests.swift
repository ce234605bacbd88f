import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// No stale OK: a change on disk (passwd-file replaced or edited in place, a sasldb user deleted with the
/// CLI) is in force for the first request that starts more than the check interval (1 s) after it, also
/// after a quiet spell and with the auth cache on. The requests here come after idle spells on purpose:
/// the old behaviour answered the first request after a pause from the old data and checked afterwards.
@Suite("no stale OK after a change", .serialized)
struct FreshnessTests {
    /// The daemon's documented check interval is 1 s; wait a little longer, idle.
    static let quietSpell: UInt32 = 1_400_000

    /// One PLAIN authentication on a fresh connection; the OK/FAIL line.
    func auth(_ d: DaemonUnderTest, _ user: String, _ password: String, id: Int = 1) throws -> String {
        let c = try d.connect()
        c.postfixHandshake()
        c.send("AUTH\t\(id)\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0\(user)\0\(password)"))\n")
        return c.readLine(timeout: 10) ?? "(no answer)"
    }

    func replaceAtomically(_ path: String, _ text: String) throws {
        try text.write(toFile: path + ".new", atomically: false, encoding: .utf8)
        chmod(path + ".new", 0o640)
        #expect(rename(path + ".new", path) == 0)
    }

    func overwriteInPlace(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY)
        #expect(fd >= 0)
        let bytes = Array(text.utf8)
        #expect(pwrite(fd, bytes, bytes.count, 0) == bytes.count)
        ftruncate(fd, off_t(bytes.count))
        close(fd)
    }

    @Test(arguments: ["", "auth_cache_size = 1000"])
    func aDeletedUserIsRefusedAfterAnIdleSpell(cache: String) throws {
        let d = try DaemonUnderTest(extraConfig: cache)
        defer { d.stop() }
        #expect(try auth(d, "test@example.org", "testpass").hasPrefix("OK\t"))
        try replaceAtomically(d.usersPath, "bob:{PLAIN}bobpass\n")
        usleep(Self.quietSpell)
        let first = try auth(d, "test@example.org", "testpass")
        #expect(first.hasPrefix("FAIL\t"), "first request after the deletion and a quiet spell: \(first)")
        #expect(try auth(d, "bob@example.org", "bobpass").hasPrefix("OK\t"))
    }

    /// An in-place edit that keeps the size (same inode, same length), made right after the previous
    /// version was loaded, so the timestamps may not even move: the old password stops working.
    @Test(arguments: ["", "auth_cache_size = 1000"])
    func aPasswordChangedInPlaceTakesEffectAfterAnIdleSpell(cache: String) throws {
        let d = try DaemonUnderTest(extraConfig: cache, users: "test@example.org:{PLAIN}testpass\n")
        defer { d.stop() }
        #expect(try auth(d, "test@example.org", "testpass").hasPrefix("OK\t"))
        overwriteInPlace(d.usersPath, "test@example.org:{PLAIN}newpass1\n")
        usleep(Self.quietSpell)
        let old = try auth(d, "test@example.org", "testpass")
        #expect(old.hasPrefix("FAIL\t"), "old password after the change and a quiet spell: \(old)")
        #expect(try auth(d, "test@example.org", "newpass1").hasPrefix("OK\t"))
        // Same length again, within the same second as the load that just happened.
        overwriteInPlace(d.usersPath, "test@example.org:{PLAIN}newpass2\n")
        usleep(Self.quietSpell)
        #expect(try auth(d, "test@example.org", "newpass1").hasPrefix("FAIL\t"))
        #expect(try auth(d, "test@example.org", "newpass2").hasPrefix("OK\t"))
    }

    /// Many connections waiting at once when the check is due: every one of them gets the new answer.
    @Test func concurrentFirstRequestsAfterAnIdleSpellAllSeeTheChange() throws {
        let d = try DaemonUnderTest(extraConfig: "auth_cache_size = 1000")
        defer { d.stop() }
        #expect(try auth(d, "test@example.org", "testpass").hasPrefix("OK\t"))
        let clients = try (0..<32).map { _ in try d.connect() }
        for c in clients { c.postfixHandshake() }
        try replaceAtomically(d.usersPath, "bob:{PLAIN}bobpass\n")
        usleep(Self.quietSpell)
        for (i, c) in clients.enumerated() {
            c.send("AUTH\t\(i + 1)\tPLAIN\tservice=smtp\tsecured\tresp=\(b64("\0test@example.org\0testpass"))\n")
        }
        for c in clients {
            let line = c.readLine(timeout: 10) ?? "(no answer)"
            #expect(line.hasPrefix("FAIL\t"), "\(line)")
        }
    }

    /// sasldb with the auth cache: `saslgate user del` while the daemon is quiet.
    @Test func aSasldbUserDeletedWithTheCLIIsRefusedWithTheCacheOn() throws {
        let dir = NSTemporaryDirectory() + "saslgate-fresh-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = "sasldb:\(dir)/sasldb"
        for user in ["carol", "dave"] {
            let r = try runBuilt(
                "saslgate", ["user", "add", "--db", store, "-u", "example.org", "--password-stdin", user], input: "pw-\(user)\n")
            #expect(r.code == 0, "\(r.out)")
        }
        let d = try DaemonUnderTest(extraConfig: "passdbs = \(store)\nauth_cache_size = 1000")
        defer { d.stop() }
        #expect(try auth(d, "carol@example.org", "pw-carol").hasPrefix("OK\t"))
        #expect(try auth(d, "carol@example.org", "pw-carol").hasPrefix("OK\t"))  // now from the cache
        let del = try runBuilt("saslgate", ["user", "del", "--db", store, "-u", "example.org", "carol"], input: "")
        #expect(del.code == 0, "\(del.out)")
        usleep(Self.quietSpell)
        let first = try auth(d, "carol@example.org", "pw-carol")
        #expect(first.hasPrefix("FAIL\t"), "first request after user del and a quiet spell: \(first)")
        #expect(try auth(d, "dave@example.org", "pw-dave").hasPrefix("OK\t"))
    }
}
