import AuthCore
import Synchronization

@testable import AdminCommands

#if canImport(Glibc)
import Glibc
#endif

/// A scripted terminal and standard input, and captured output.
final class FakeTerminal: Sendable {
    private let state = Mutex<State>(State())

    struct State {
        var out: [String] = []
        var err: [String] = []
        var stdinLines: [String?] = []
        var ttyAnswers: [String] = []
        var prompts: [String] = []
    }

    init(stdin: [String?] = [], tty: [String] = []) {
        state.withLock {
            $0.stdinLines = stdin
            $0.ttyAnswers = tty
        }
    }

    var out: String { state.withLock { $0.out.joined(separator: "\n") } }
    var err: String { state.withLock { $0.err.joined(separator: "\n") } }
    var outLines: [String] { state.withLock { $0.out } }
    var prompts: [String] { state.withLock { $0.prompts } }

    var io: CommandIO {
        CommandIO(
            out: { line in self.state.withLock { $0.out.append(line) } },
            err: { line in self.state.withLock { $0.err.append(line) } },
            readStandardInputLine: {
                self.state.withLock { s -> Secret? in
                    guard !s.stdinLines.isEmpty, let line = s.stdinLines.removeFirst() else { return nil }
                    return Secret(line)
                }
            },
            readHiddenFromTerminal: { prompt in
                try self.state.withLock { s throws -> Secret in
                    s.prompts.append(prompt)
                    guard !s.ttyAnswers.isEmpty else {
                        throw CLIError.failure("no terminal to ask for the password on")
                    }
                    return Secret(s.ttyAnswers.removeFirst())
                }
            }
        )
    }
}

struct CLIResult {
    var code: Int32
    var out: String
    var err: String
    var all: String { out + "\n" + err }
}

/// Runs `saslgate` in-process with a fake terminal.
func saslgate(_ arguments: [String], stdin: String? = nil, tty: [String] = []) -> CLIResult {
    let terminal = FakeTerminal(stdin: stdin.map { [$0] } ?? [], tty: tty)
    let code = CommandIO.$current.withValue(terminal.io) { SaslgateMain.run(arguments: arguments) }
    return CLIResult(code: code, out: terminal.out, err: terminal.err)
}

final class TempDir: Sendable {
    let path: String

    init() {
        var template = Array("/tmp/saslgate-cli.XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { buf in mkdtemp(buf.baseAddress!).map { String(cString: $0) }! }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    @discardableResult
    func write(_ name: String, _ contents: String) -> String {
        let p = file(name)
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0o640)
        _ = Array(contents.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return p
    }

    func read(_ name: String) -> String? {
        let fd = open(file(name), O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    deinit {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { unlink("\(path)/\(name)") }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}
