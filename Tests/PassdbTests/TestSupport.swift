import AuthCore
import Logging
import Synchronization

@testable import Passdb

#if canImport(Glibc)
import Glibc
#endif

/// A private temporary directory, removed with its files when the value goes away.
final class TempDir: Sendable {
    let path: String

    init() {
        var template = Array("/tmp/passdb-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buf -> String? in
            mkdtemp(buf.baseAddress!).map { String(cString: $0) }
        }
        path = made!
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `contents` to `name` (replacing it in place, not atomically) and returns the path.
    @discardableResult
    func write(_ name: String, _ contents: String, mode: mode_t = 0o640) -> String {
        let p = file(name)
        writeFile(p, Array(contents.utf8), mode: mode)
        return p
    }

    deinit {
        // Best-effort recursive removal of a flat directory.
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

func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o640) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    precondition(fd >= 0, "open \(path) failed")
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

func readText(_ path: String) -> String? { readFile(path).map { String(decoding: $0, as: UTF8.self) } }

func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o7777
}

/// Log lines captured from a `Logger`, for asserting what is (and is not) logged.
final class CapturedLogs: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }

    func logger(label: String = "test") -> Logger {
        Logger(label: label, factory: { _ in CapturingHandler(sink: self) })
    }

    struct CapturingHandler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            sink.append("\(event.level) \(event.message) \(event.metadata ?? [:])")
        }
    }
}

/// An executor that counts how often it was used, running the work inline.
final class CountingExecutor: BlockingExecutor {
    private let counter = Mutex(0)
    var runs: Int { counter.withLock { $0 } }

    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        counter.withLock { $0 += 1 }
        return body()
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(seconds: Double = 5, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// Known hashes of the password "pencil" made by Dovecot 2.3.19 `doveadm pw` (and libxcrypt for the
/// crypt ones without a Dovecot scheme name).
enum Fixtures {
    static let password = "pencil"
    static let doveadm: [String] = [
        "{CRAM-MD5}7f47ace0e2af8f6cdeb72c03243a8c87834e19104164d6a42de72d243adb4080",
        "{SSHA256}O7/uJqEKwS3uGnPFQfpcmeetx4MYvKIV1+htHaRxk8czrnQk",
        "{SSHA512}wu9joCR/0MuLFribrOU3FD3ChStGElsN7uDfJFgXgHiRuo7+1Owm0AnVZIWBduOkBsjxcLSBl2LyrUJKZmMxqsBzXyo=",
        "{SHA512-CRYPT}$6$jX7HZaIGTnR4iQO3$K9IfADgv5VUgLIKp1m1d/FyRFWpqsuRpSsMU..55OahsDWJT/rYPBGBIBxIBUkdN.L62jc1O5G.zdaQ4j95RX0",
        "{SHA256-CRYPT}$5$OGEt9vgD3C.9ZaVG$5jDJuTqnC7U5fNVDH.Z6K4ByQoUKJ1ecrrI9lbBDBT2",
        "{BLF-CRYPT}$2y$05$0qhz0QdJAeBDXoeYPr2ZYet9mQV0DEpUwQZgYwPp1EAmdUQ1SPOku",
        "{SCRAM-SHA-1}4096,a8dvG4/0zqiCDarpUbAOfw==,f8TPXDwLHm0OOeXJR9HvHIXG+z0=,EMhUzZ5PP8EtIXA+UdT4/V90SGw=",
        "{SCRAM-SHA-256}4096,RoPeF0t2Hs0OBSIQcwrA8A==,iLqxM1AwtDUJtbtwmtQrYa6vwRUiMQ4oM1817/fYf4g=,e6Q/0hGs1FuWTeoLQdf4vaKMCRp5uFLzw46brS8vJqg=",
        "{PLAIN}pencil",
        "{CLEARTEXT}pencil",
        "{CRYPT}$y$j9T$I1wXowWy./cSma7rNYiVP/$vfz/GGbr3e3ouIbiiQwGMoMfPO9PoxLjrWPkttC6c0A",
        "$y$j9T$I1wXowWy./cSma7rNYiVP/$vfz/GGbr3e3ouIbiiQwGMoMfPO9PoxLjrWPkttC6c0A",
        "{CRYPT}$gy$j9T$vHR3jXW7uE5pn51Y33ZWS.$n82GKWChpke/g9hw8VYoPkyUpXvwlPBc0nIpDa5/7bA",
        "{CRYPT}$2b$04$SSxn3uPHkcngain2bzdaheArCXfim9hdRZ/BhwI8gDjgDbFvmf1bu",
        "{MD5-CRYPT}$1$aBK1ZAHx$nxIjQy1Njk5GL9Kl4/Go//",
        "{crypt}abJ32bJMdTsnY",
    ]
    /// `doveadm pw -s DIGEST-MD5 -u bob@example.com -p pencil`.
    static let digestBob = "{DIGEST-MD5}e77b335a942b47d2d097d705695ea57b"
}
