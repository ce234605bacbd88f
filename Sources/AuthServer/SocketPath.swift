#if canImport(Glibc)
import Glibc
#endif

/// Preparing the listening socket's path: refuse to clobber anything that is not a stale socket,
/// and never leave a window where the socket exists with looser permissions than configured.
enum SocketPath {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// Removes `path` if it is a socket nobody listens on. Throws if it is something else, or if a live
    /// server answers there (another saslgated or Dovecot already runs on it).
    static func removeStale(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw Problem(description: "\(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw Problem(description: "\(path) exists and is not a socket; remove it or choose another 'listen' path")
        }
        if isLive(path) {
            throw Problem(description: "\(path): another server is already listening there; stop it first (or choose another 'listen' path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw Problem(description: "cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// True if connecting to the socket succeeds.
    static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0
    }

    /// Sets owner and group (names; nil keeps the current one) and the mode of the socket file.
    static func applyOwnership(_ path: String, mode: UInt32, user: String?, group: String?) throws {
        var uid = uid_t.max  // -1: unchanged
        var gid = gid_t.max
        if let user {
            guard let pw = getpwnam(user) else {
                throw Problem(description: "listen_user '\(user)': no such user; create it or change listen_user")
            }
            uid = pw.pointee.pw_uid
            if group == nil { gid = pw.pointee.pw_gid }
        }
        if let group {
            guard let gr = getgrnam(group) else {
                throw Problem(description: "listen_group '\(group)': no such group; create it or change listen_group")
            }
            gid = gr.pointee.gr_gid
        }
        if uid != uid_t.max || gid != gid_t.max {
            guard chown(path, uid, gid) == 0 else {
                throw Problem(description: "chown \(path): \(String(cString: strerror(errno))) (saslgated must start as root to set listen_user/listen_group)")
            }
        }
        guard chmod(path, mode_t(mode)) == 0 else {
            throw Problem(description: "chmod \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// File descriptors passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`), starting at 3.
    static func systemdSockets() -> [Int32] {
        guard let fdsText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int(fdsText), count > 0 else {
            return []
        }
        if let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), let pid = Int32(pidText), pid != getpid() {
            return []
        }
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDNAMES")
        return (0..<Int32(count)).map { 3 + $0 }
    }
}
