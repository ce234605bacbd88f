#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be read, in words for an error message.
public struct FileReadProblem: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Reads a whole small file with POSIX calls; refuses files over `limit` bytes.
public func readSmallFile(_ path: String, limit: Int) -> Result<[UInt8], FileReadProblem> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(FileReadProblem(description: String(cString: strerror(errno)))) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(FileReadProblem(description: String(cString: strerror(errno))))
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
        if out.count > limit {
            return .failure(FileReadProblem(description: "larger than \(limit) bytes; is this the right file?"))
        }
    }
    return .success(out)
}

/// A whole configuration file as UTF-8 text; a problem is a `ConfigErrors` naming the file, with `fix`
/// (what to do when it cannot be read).
func readConfigText(_ path: String, limit: Int, fix: String) throws(ConfigErrors) -> String {
    switch readSmallFile(path, limit: limit) {
    case .success(let bytes):
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigErrors([ConfigError(file: path, line: nil, "not UTF-8 text")])
        }
        return text
    case .failure(let problem):
        throw ConfigErrors([ConfigError(file: path, line: nil, "cannot read: \(problem); \(fix)")])
    }
}
