import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Creating the listening socket: never following a symlink that the owner of the socket's directory
/// plants, refusing a missing run_user, and creating only its own missing directory.
@Suite("socket setup", .serialized)
struct SocketSetupTests {
    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "saslgate-sock-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        return dir
    }

    static func config(_ dir: String, listen: String, extra: String = "") throws -> String {
        let users = dir + "/users"
        try "test@example.org:{PLAIN}testpass\n".write(toFile: users, atomically: true, encoding: .utf8)
        chmod(users, 0o640)
        let path = dir + "/saslgated.conf"
        try """
            listen = \(listen)
            listen_mode = 0660
            run_user =
            control_socket =
            mechanisms = plain
            passdbs = passwd-file:\(users)
            default_realm = example.org
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The owner of the socket's directory (here `nobody`, as the postfix user owns `private/`) swaps the
    /// socket's name, and every name the daemon might use there, for symlinks to a root-only file, as fast
    /// as it can while the daemon starts again and again. The file must never change owner or mode.
    @Test func aRacingSymlinkNeverRedirectsTheSocketSetup() throws {
        guard geteuid() == 0, let nobody = getpwnam("nobody") else {
            print("skipped: needs root and the user nobody (CI runs as root)")
            return
        }
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = dir + "/private"
        mkdir(spool, 0o750)
        chown(spool, nobody.pointee.pw_uid, nobody.pointee.pw_gid)
        let victim = dir + "/shadow"
        try "root:secret-hash\n".write(toFile: victim, atomically: true, encoding: .utf8)
        chmod(victim, 0o600)
        let socket = spool + "/auth"
        let conf = try Self.config(dir, listen: socket, extra: "listen_user = nobody\nlisten_group =")

        let stop = Atomic<Bool>(false)
        let swaps = Atomic<Int>(0)
        let racer = Thread {
            var st = stat()
            while !stop.load(ordering: .relaxed) {
                // The socket's own name: the moment a socket appears there, it becomes a symlink (the
                // window between bind and a chown by path).
                if lstat(socket, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK {
                    unlink(socket)
                    symlink(victim, socket)
                }
                // Any private directory the daemon makes: moved away, replaced by one with a symlink.
                if let names = try? FileManager.default.contentsOfDirectory(atPath: spool) {
                    for name in names where name.hasPrefix(".") {
                        let planted = spool + "/" + name
                        if rename(planted, planted + ".moved") == 0 {
                            mkdir(planted, 0o777)
                            symlink(victim, planted + "/s")
                        }
                    }
                }
                swaps.wrappingAdd(1, ordering: .relaxed)
            }
            _ = st
        }
        racer.start()
        var started = 0
        for _ in 0..<15 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: builtExecutable("saslgated"))
            p.arguments = ["-c", conf]
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            usleep(150_000)
            if p.isRunning { started += 1 }
            p.terminate()
            waitForExit(p)
        }
        stop.store(true, ordering: .relaxed)
        while !racer.isFinished { usleep(10_000) }
        var st = stat()
        #expect(stat(victim, &st) == 0)
        #expect(st.st_uid == 0 && st.st_gid == 0, "the root-only file was chowned to \(st.st_uid):\(st.st_gid)")
        #expect(st.st_mode & 0o777 == 0o600, "the root-only file's mode became \(String(st.st_mode & 0o777, radix: 8))")
        print("socket race: \(swaps.load(ordering: .relaxed)) swaps during 15 starts (\(started) came up)")

        // Without the racer the socket comes up with the configured owner and mode.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] {
            try? FileManager.default.removeItem(atPath: spool + "/" + name)
        }
        symlink(victim, socket)  // a leftover symlink is replaced, not followed
        let p = Process()
        p.executableURL = URL(fileURLWithPath: builtExecutable("saslgated"))
        p.arguments = ["-c", conf]
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { p.terminate(); waitForExit(p) }
        var up = false
        for _ in 0..<100 {
            if lstat(socket, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK { up = true; break }
            usleep(50_000)
        }
        #expect(up)
        #expect(st.st_uid == nobody.pointee.pw_uid && st.st_gid == nobody.pointee.pw_gid)
        #expect(st.st_mode & 0o777 == 0o660)
        #expect(stat(victim, &st) == 0 && st.st_uid == 0)
        // The private directory the socket was made in goes right after the socket is moved into place:
        // allow the daemon a moment for that.
        var leftovers: [String] = []
        for _ in 0..<100 {
            leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0 != "auth" }
            if leftovers.isEmpty { break }
            usleep(50_000)
        }
        #expect(leftovers.isEmpty, "private directories left behind: \(leftovers)")
    }

    @Test func aMissingRunUserStopsTheStart() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conf = try Self.config(dir, listen: dir + "/auth", extra: "listen_user =\nlisten_group =")
        try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(of: "run_user =", with: "run_user = no-such-user-sg")
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let p = Process()
        let pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: builtExecutable("saslgated"))
        p.arguments = ["-c", conf]
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(out.contains("run_user 'no-such-user-sg' does not exist"), "\(out)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/auth"), "nothing is bound before the check")
    }

    /// The development layout: a missing directory of the invoker's own is created; a missing directory
    /// for a socket that another user is to own is an error that says what to create.
    @Test func aMissingSocketDirectory() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let own = try Self.config(dir, listen: dir + "/.run/auth", extra: "listen_user =\nlisten_group =")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: builtExecutable("saslgated"))
        p.arguments = ["-c", own]
        p.standardError = FileHandle.nullDevice
        try p.run()
        var st = stat()
        var up = false
        for _ in 0..<100 {
            if lstat(dir + "/.run/auth", &st) == 0 { up = true; break }
            usleep(50_000)
        }
        p.terminate()
        p.waitUntilExit()
        #expect(up, "the daemon creates its own missing .run/")

        let postfixLike = try Self.config(dir, listen: dir + "/spool/private/auth", extra: "listen_user = root\nlisten_group =")
        let r = try runBuilt("saslgated", ["-c", postfixLike])
        #expect(r.code != 0)
        #expect(r.out.contains("the directory \(dir)/spool/private does not exist"), "\(r.out)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/spool/private"))
    }
}
