import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A core of saslgated would hold the user table and the passwords of requests in flight: the daemon
/// makes itself non-dumpable, and the systemd unit sets no core size either.
@Suite struct CoreDumpTests {
    /// The kernel shows the files in a non-dumpable process's /proc/PID (not the directory itself) as
    /// owned by root, whoever runs it. So the daemon is started as `nobody` (which needs root), and
    /// /proc/PID/environ must belong to root while the process's real uid is nobody's.
    @Test(.enabled(if: getuid() == 0, "needs root, to start the daemon as nobody"))
    func theDaemonIsNotDumpable() throws {
        let nobody = try #require(getpwnam("nobody")?.pointee)
        let nogroup = try #require(getgrnam("nogroup")?.pointee)
        var template = Array((NSTemporaryDirectory() + "saslgate-core.XXXXXX").utf8CString)
        let dir = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: "\(dir)/\(name)", atomically: false, encoding: .utf8)
            chmod("\(dir)/\(name)", 0o600)
            chown("\(dir)/\(name)", nobody.pw_uid, nogroup.gr_gid)
        }
        try write("users", "test@example.org:{PLAIN}testpass\n")
        try write(
            "saslgated.conf",
            """
            listen = \(dir)/auth
            listen_mode = 0600
            listen_user =
            listen_group =
            run_user =
            control_socket =
            passdbs = passwd-file:\(dir)/users
            default_realm = example.org
            """)
        chown(dir, nobody.pw_uid, nogroup.gr_gid)
        let logPath = dir + "/saslgated.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = [
            "--reuid=nobody", "--regid=nogroup", "--clear-groups", builtExecutable("saslgated"), "-c", dir + "/saslgated.conf",
        ]
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: dir + "/auth") {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            guard Date() < deadline, process.isRunning else { throw TestFailure("saslgated did not start: \(log)") }
            usleep(20_000)
        }

        // setpriv execs the daemon: same pid.
        let pid = process.processIdentifier
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Name:\tsaslgated\n"), "\(status)")
        let realUID = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first
        #expect(realUID.flatMap { UInt32($0) } == nobody.pw_uid, "\(status)")
        var st = stat()
        #expect(stat("/proc/\(pid)/environ", &st) == 0)
        #expect(st.st_uid == 0, "/proc/\(pid)/environ belongs to uid \(st.st_uid): the daemon is dumpable")
    }

    @Test func theUnitSetsNoCoreSize() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let unit = try String(contentsOf: root.appendingPathComponent("systemd/saslgated.service"), encoding: .utf8)
        #expect(unit.split(separator: "\n").contains("LimitCORE=0"))
    }
}
