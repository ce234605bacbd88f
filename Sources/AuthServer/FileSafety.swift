#if canImport(Glibc)
import Glibc
#endif

/// Refuses files an auth daemon must not trust or must not leak: a world-writable configuration or
/// user table (anyone could add a user) and a world-readable user table or store (hashes and secrets).
enum FileSafety {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    static func checkNotWorldWritable(_ path: String, what: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { return }  // a missing file is reported by whoever reads it
        if st.st_mode & S_IWOTH != 0 {
            throw Problem(description: "\(path): \(what) is writable by everyone; fix with: chmod o-w \(path)")
        }
    }

    static func checkSecretFile(_ path: String, what: String) throws {
        try checkNotWorldWritable(path, what: what)
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        if st.st_mode & S_IROTH != 0 {
            throw Problem(description: "\(path): \(what) is readable by everyone; fix with: chmod o-r \(path) (0640, group of run_user)")
        }
    }
}
