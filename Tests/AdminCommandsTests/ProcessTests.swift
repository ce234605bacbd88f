import Testing

@testable import AdminCommands
@testable import Passdb

#if canImport(Glibc)
import Glibc
#endif

/// The built `saslgate` executable, next to the test bundle (nil when it was not built).
let saslgateBinary: String? = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    var dir = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // .../debug/saslgatePackageTests.xctest or .../debug/<bundle>/...: walk up to the build directory.
    while let slash = dir.lastIndex(of: "/"), !dir.isEmpty {
        dir = String(dir[..<slash])
        let candidate = dir + "/saslgate"
        var st = stat()
        if stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && (st.st_mode & 0o111) != 0 {
            return candidate
        }
        if dir.hasSuffix("/.build") { break }
    }
    return nil
}()

/// Runs the real binary with `stdin` piped in; returns the exit status and standard output + error.
func runProcess(_ arguments: [String], stdin: String) -> (status: Int32, output: String) {
    guard let binary = saslgateBinary else { return (-1, "no binary") }
    var input: [Int32] = [0, 0]
    var output: [Int32] = [0, 0]
    pipe(&input)
    pipe(&output)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, input[0], 0)
    posix_spawn_file_actions_adddup2(&actions, output[1], 1)
    posix_spawn_file_actions_adddup2(&actions, output[1], 2)
    posix_spawn_file_actions_addclose(&actions, input[1])
    posix_spawn_file_actions_addclose(&actions, output[0])
    let argv = ([binary] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, binary, &actions, nil, argv, environ)
    posix_spawn_file_actions_destroy(&actions)
    close(input[0])
    close(output[1])
    guard rc == 0 else {
        close(input[1])
        close(output[0])
        return (-1, "spawn failed")
    }
    _ = Array(stdin.utf8).withUnsafeBytes { write(input[1], $0.baseAddress, $0.count) }
    close(input[1])
    var collected: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
        if n <= 0 { break }
        collected += chunk[0..<n]
    }
    close(output[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return (exitStatus, String(decoding: collected, as: UTF8.self))
}

@Suite("saslgate as a process", .enabled(if: saslgateBinary != nil, "the saslgate executable is built"))
struct ProcessTests {
    @Test func exitCodesAndStandardInput() {
        let dir = TempDir()
        let users = dir.file("users")
        let add = runProcess(
            ["user", "add", "-f", users, "--password-stdin", "bob@example.com"], stdin: "s3cret-pw\nrest\n")
        #expect(add.status == 0, "\(add.output)")
        #expect(!add.output.contains("s3cret"))
        #expect(
            runProcess(["user", "add", "-f", users, "--password-stdin", "bob@example.com"], stdin: "x1\n").status == 1)
        #expect(runProcess(["user", "del", "-f", users, "nobody"], stdin: "").status == 1)
        #expect(runProcess(["user", "add", "-f", users, "--password-stdin"], stdin: "x1\n").status == 2)
        #expect(runProcess(["user", "add", "-f", users, "--password-stdin", "ann"], stdin: "").status == 2)
        let list = runProcess(["user", "list", "-f", users], stdin: "")
        #expect(list.status == 0 && list.output == "bob@example.com\n")
        let table = try? PasswdFile.load(path: users)
        #expect(table?.password(forUser: "bob@example.com")?.verify(.init("s3cret-pw"), user: "") == .match)
    }

    @Test func concurrentProcessesLoseNothing() async {
        let dir = TempDir()
        let users = dir.write("users", "# shared\n")
        let processes = 8
        let perProcess = 6
        await withTaskGroup(of: Int32.self) { group in
            for p in 0..<processes {
                group.addTask {
                    // One OS thread per writer, so all eight really run at once.
                    await withCheckedContinuation { (done: CheckedContinuation<Int32, Never>) in
                        runOnBackgroundThread {
                            var worst: Int32 = 0
                            for i in 0..<perProcess {
                                let r = runProcess(
                                    [
                                        "user", "add", "-f", users, "--scheme", "SSHA256", "--password-stdin",
                                        "p\(p)u\(i)",
                                    ],
                                    stdin: "pw\(i)\n")
                                worst = max(worst, r.status)
                            }
                            done.resume(returning: worst)
                        }
                    }
                }
            }
            for await status in group { #expect(status == 0) }
        }
        let table = try? PasswdFile.load(path: users)
        #expect(table?.count == processes * perProcess)
    }
}

@Suite("reading a password line")
struct ReadLineTests {
    func piped(_ bytes: [UInt8]) -> Int32 {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        _ = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        return fds[0]
    }

    @Test func readsOneLineAndNoMore() throws {
        let fd = piped(Array("pw one\r\nsecond\n".utf8))
        defer { close(fd) }
        #expect(try Terminal.readLine(fd: fd)?.bytes == Array("pw one".utf8))
        #expect(try Terminal.readLine(fd: fd)?.bytes == Array("second".utf8))
        #expect(try Terminal.readLine(fd: fd) == nil)
    }

    @Test func lastLineWithoutNewlineAndEmptyLine() throws {
        let fd = piped(Array("\nlast".utf8))
        defer { close(fd) }
        #expect(try Terminal.readLine(fd: fd)?.isEmpty == true)
        #expect(try Terminal.readLine(fd: fd)?.bytes == Array("last".utf8))
    }

    @Test func overlongLineIsRefused() {
        let fd = piped([UInt8](repeating: 0x61, count: maxPasswordLineLength + 10))
        defer { close(fd) }
        #expect(throws: CLIError.self) { try Terminal.readLine(fd: fd) }
    }
}
