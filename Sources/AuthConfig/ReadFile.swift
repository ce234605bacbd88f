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
