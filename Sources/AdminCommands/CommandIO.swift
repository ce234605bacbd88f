public import AuthCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything the commands read from or write to the outside world, so tests can swap it.
/// Commands use `CommandIO.current`; tests bind another value with `CommandIO.$current.withValue`.
public struct CommandIO: Sendable {
    /// Writes one line (a newline is added) to standard output.
    public var out: @Sendable (String) -> Void
    /// Writes one line (a newline is added) to standard error.
    public var err: @Sendable (String) -> Void
    /// Reads one line from standard input (without the line break). Nil at end of input with nothing read.
    public var readStandardInputLine: @Sendable () throws -> Secret?
    /// Shows `prompt` on the controlling terminal and reads one line with echo off.
    public var readHiddenFromTerminal: @Sendable (_ prompt: String) throws -> Secret
    /// False when standard input is a pipe or a file (a password can be piped in).
    public var standardInputIsTerminal: @Sendable () -> Bool

    public init(
        out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void,
        readStandardInputLine: @escaping @Sendable () throws -> Secret?,
        readHiddenFromTerminal: @escaping @Sendable (_ prompt: String) throws -> Secret,
        standardInputIsTerminal: @escaping @Sendable () -> Bool = { true }
    ) {
        self.out = out
        self.err = err
        self.readStandardInputLine = readStandardInputLine
        self.readHiddenFromTerminal = readHiddenFromTerminal
        self.standardInputIsTerminal = standardInputIsTerminal
    }

    @TaskLocal public static var current: CommandIO = .system

    /// The real process: stdout, stderr, fd 0 and /dev/tty.
    public static let system = CommandIO(
        out: { writeAll(STDOUT_FILENO, $0 + "\n") },
        err: { writeAll(STDERR_FILENO, $0 + "\n") },
        readStandardInputLine: { try Terminal.readLine(fd: STDIN_FILENO) },
        readHiddenFromTerminal: { try Terminal.readHidden(prompt: $0) },
        standardInputIsTerminal: { isatty(STDIN_FILENO) == 1 }
    )
}

/// Longest password line accepted from standard input or the terminal.
let maxPasswordLineLength = 4096

private func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
    bytes.removeAll()
}

/// Line reading from a file descriptor and from the terminal with echo off.
enum Terminal {
    /// Reads bytes up to a newline (dropped, with a CR before it) or end of input; nil if nothing came.
    /// Reads one byte at a time so nothing after the line is consumed.
    static func readLine(fd: Int32) throws -> Secret? {
        var line: [UInt8] = []
        defer { line.wipe() }
        var byte: UInt8 = 0
        var sawAnything = false
        while true {
            let n = read(fd, &byte, 1)
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError.failure("cannot read the password: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            sawAnything = true
            if byte == 0x0A { break }
            line.append(byte)
            if line.count > maxPasswordLineLength {
                throw CLIError.failure("the password line is longer than \(maxPasswordLineLength) bytes")
            }
        }
        byte = 0
        guard sawAnything else { return nil }
        if line.last == 0x0D { line.removeLast() }
        return Secret(line)
    }

    /// Prompts on /dev/tty and reads a line with echo off; the terminal is restored even on SIGINT/SIGTERM.
    static func readHidden(prompt: String) throws -> Secret {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            throw CLIError.failure("no terminal to ask for the password on; pipe it in with --password-stdin")
        }
        defer { close(fd) }
        var saved = termios()
        guard tcgetattr(fd, &saved) == 0 else {
            throw CLIError.failure("cannot switch off echo on the terminal; use --password-stdin")
        }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO | ECHONL)  // the newline is printed by us afterwards
        TerminalRestore.arm(fd: fd, saved: saved)
        defer { TerminalRestore.disarm() }
        guard tcsetattr(fd, TCSAFLUSH, &quiet) == 0 else {
            throw CLIError.failure("cannot switch off echo on the terminal; use --password-stdin")
        }
        defer {
            var s = saved
            tcsetattr(fd, TCSAFLUSH, &s)
            writeAll(fd, "\n")
        }
        writeAll(fd, prompt)
        return try readLine(fd: fd) ?? Secret([UInt8]())
    }
}

/// Restores the terminal if SIGINT/SIGTERM/SIGHUP arrive while echo is off, then dies of the signal.
private enum TerminalRestore {
    nonisolated(unsafe) static var fd: Int32 = -1
    nonisolated(unsafe) static var saved = termios()
    nonisolated(unsafe) static var previous: [Int32: sighandler_t?] = [:]
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    static func arm(fd: Int32, saved: termios) {
        TerminalRestore.saved = saved
        TerminalRestore.fd = fd
        for sig in signals {
            previous[sig] = signal(sig) { sig in
                if TerminalRestore.fd >= 0 { tcsetattr(TerminalRestore.fd, TCSAFLUSH, &TerminalRestore.saved) }
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }

    static func disarm() {
        for sig in signals { signal(sig, previous[sig] ?? SIG_DFL) }
        fd = -1
    }
}
