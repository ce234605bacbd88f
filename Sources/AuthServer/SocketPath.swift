#if canImport(Glibc)
import Glibc
#endif
import AuthCore

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

    /// Who should own the socket file: names resolved to ids (-1: unchanged).
    static func owner(user: String?, group: String?) throws -> (uid: uid_t, gid: gid_t) {
        var uid = uid_t.max
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
        return (uid, gid)
    }

    /// A listening socket at `path`, created with its final mode, owner and group before anybody can
    /// reach it, and never by a path that someone else could redirect (docs/SECURITY.md):
    ///
    /// The socket's directory often belongs to another user (Postfix's `private/` is the postfix
    /// user's), who could swap any name in it for a symlink between our calls. So the socket is bound
    /// inside a fresh 0700 directory of ours (through its descriptor, `/proc/self/fd/N/`), its owner is
    /// set there with `fchownat(AT_SYMLINK_NOFOLLOW)`, and it is renamed into place with `renameat`,
    /// which replaces whatever stands at `path` (a stale socket, a planted symlink) without following
    /// it. Returns the listening descriptor and the socket file's identity (for removal at shutdown).
    ///
    /// `createParent`: a missing directory may be created (the development configuration's own `.run/`);
    /// otherwise a missing directory is an error that says what to create.
    static func bindPrivately(
        _ path: String, mode: UInt32, owner: (uid: uid_t, gid: gid_t), backlog: Int32, createParent: Bool
    ) throws -> (fd: Int32, device: UInt64, inode: UInt64) {
        let (parent, name) = split(path)
        let parentFD = try openParent(parent, path: path, createParent: createParent)
        defer { close(parentFD) }
        try checkExisting(parentFD, name, path: path)

        // Our own directory next to the target (same file system, so rename works).
        var privateName = ""
        for attempt in 0..<8 {
            let candidate = ".\(name).\(SecureRandom.bytes(8).map { String($0, radix: 16) }.joined())"
            if mkdirat(parentFD, candidate, 0o700) == 0 { privateName = candidate; break }
            guard errno == EEXIST, attempt < 7 else {
                throw Problem(description: "cannot create a private directory in \(parent): \(errnoText()) (saslgated needs write access there)")
            }
        }
        defer { unlinkat(parentFD, privateName, AT_REMOVEDIR) }
        let privateFD = openat(parentFD, privateName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard privateFD >= 0 else { throw Problem(description: "cannot open \(parent)/\(privateName): \(errnoText())") }
        defer { close(privateFD) }
        var st = stat()
        guard fstat(privateFD, &st) == 0, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            throw Problem(description: "\(parent)/\(privateName) is not the private directory just created; refusing to bind there")
        }
        defer { unlinkat(privateFD, "s", 0) }  // only if it was not moved into place

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Problem(description: "socket: \(errnoText())") }
        var keep = false
        defer { if !keep { close(fd) } }
        // The mode from the start: umask is the only way to set it at creation.
        let oldMask = umask(mode_t(~mode & 0o777))
        let bound = bindUnix(fd, "/proc/self/fd/\(privateFD)/s")
        let bindErrno = errno
        umask(oldMask)
        guard bound else {
            throw Problem(description: "cannot listen on \(path): bind: \(String(cString: strerror(bindErrno))) (is /proc mounted?)")
        }
        if owner.uid != uid_t.max || owner.gid != gid_t.max {
            guard fchownat(privateFD, "s", owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw Problem(description: "chown \(path): \(errnoText()) (saslgated must start as root to set listen_user/listen_group)")
            }
        }
        guard fstatat(privateFD, "s", &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw Problem(description: "the socket just bound in \(parent)/\(privateName) is gone; refusing to continue")
        }
        guard listen(fd, backlog) == 0 else { throw Problem(description: "listen on \(path): \(errnoText())") }
        guard renameat(privateFD, "s", parentFD, name) == 0 else {
            throw Problem(description: "cannot move the socket into place at \(path): \(errnoText())")
        }
        keep = true
        return (fd, UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Removes the socket file at shutdown if it is still the one we bound (not a newer daemon's).
    static func removeIfOurs(_ path: String, device: UInt64, inode: UInt64) {
        var st = stat()
        guard lstat(path, &st) == 0, UInt64(st.st_dev) == device, UInt64(st.st_ino) == inode else { return }
        unlink(path)
    }

    private static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    private static func openParent(_ parent: String, path: String, createParent: Bool) throws -> Int32 {
        var fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && createParent {
            guard mkdir(parent, 0o750) == 0 || errno == EEXIST else {
                throw Problem(description: "cannot create the socket's directory \(parent): \(errnoText())")
            }
            fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        guard fd >= 0 else {
            if errno == ENOENT {
                throw Problem(description: "cannot listen on \(path): the directory \(parent) does not exist; create it (for Postfix: its queue_directory's private/, which Postfix creates when installed) or change 'listen'")
            }
            throw Problem(description: "cannot listen on \(path): \(parent): \(errnoText())")
        }
        return fd
    }

    /// Refuses to replace anything but a stale socket or a symlink at the target.
    private static func checkExisting(_ parentFD: Int32, _ name: String, path: String) throws {
        var st = stat()
        guard fstatat(parentFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFSOCK:
            if isLive(path) {
                throw Problem(description: "\(path): another server is already listening there; stop it first (or choose another 'listen' path)")
            }
        case S_IFLNK:
            break  // replaced, never followed
        default:
            throw Problem(description: "\(path) exists and is not a socket; remove it or choose another 'listen' path")
        }
    }

    private static func bindUnix(_ fd: Int32, _ path: String) -> Bool {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            errno = ENAMETOOLONG
            return false
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        } == 0
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

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
