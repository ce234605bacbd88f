#if canImport(Glibc)
import Glibc
#endif

/// Dropping root for good, after the socket is bound and the root-only files are open
/// (Postfix's chroot_uid order: setgroups/initgroups, setgid, setuid, then verify).
enum Privileges {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// Switches to `user` (with its primary group, its supplementary groups and `extraGroups`).
    /// Returns false when not running as root (nothing to drop).
    static func drop(to user: String, extraGroups: [String]) throws -> Bool {
        guard geteuid() == 0 else { return false }
        guard let pw = getpwnam(user) else {
            throw Problem(description: "run_user '\(user)': no such user; create it (useradd --system --no-create-home --shell /usr/sbin/nologin \(user)) or set run_user = (empty) to stay root")
        }
        let uid = pw.pointee.pw_uid
        let gid = pw.pointee.pw_gid
        guard uid != 0 else { return false }
        var groups: [gid_t] = [gid]
        // The user's own supplementary groups.
        var count: Int32 = 64
        var buffer = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, gid, &buffer, &count) >= 0 {
            groups.append(contentsOf: buffer.prefix(Int(count)))
        }
        for name in extraGroups {
            guard let gr = getgrnam(name) else {
                throw Problem(description: "group '\(name)' needed by the configured passdbs does not exist")
            }
            groups.append(gr.pointee.gr_gid)
        }
        var unique: [gid_t] = []
        for g in groups where !unique.contains(g) { unique.append(g) }
        guard setgroups(unique.count, unique) == 0 else {
            throw Problem(description: "setgroups: \(String(cString: strerror(errno)))")
        }
        guard setgid(gid) == 0 else { throw Problem(description: "setgid(\(gid)): \(String(cString: strerror(errno)))") }
        guard setuid(uid) == 0 else { throw Problem(description: "setuid(\(uid)): \(String(cString: strerror(errno)))") }
        // Verify there is no way back.
        guard setuid(0) != 0, geteuid() == uid, getegid() == gid else {
            throw Problem(description: "privileges could not be dropped for good; refusing to run")
        }
        return true
    }
}
