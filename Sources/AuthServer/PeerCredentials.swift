#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// The connecting process, from SO_PEERCRED on the Unix socket.
struct PeerCredentials: CustomStringConvertible, Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    var description: String { "pid=\(pid),uid=\(uid),gid=\(gid)" }

    /// Layout of Linux `struct ucred` (pid_t, uid_t, gid_t), which Swift's Glibc does not import.
    private struct UCred {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// Reads the credentials; the future completes at once when called on the channel's event loop.
    static func of(_ channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }.recover { _ in nil }
    }
}

/// `client_allowlist`: user names, `@group` names, numeric uids.
struct PeerAllowlist: Sendable {
    var uids: Set<UInt32> = []
    var gids: Set<UInt32> = []

    var isEmpty: Bool { uids.isEmpty && gids.isEmpty }

    /// The allowlist of `entries`, looked up in the system's user and group databases now, and what is
    /// wrong with each entry that names no user or group.
    static func resolve(_ entries: [String]) -> (allowlist: PeerAllowlist, problems: [String]) {
        var list = PeerAllowlist()
        var problems: [String] = []
        for entry in entries {
            if entry.hasPrefix("@") {
                let name = String(entry.dropFirst())
                if let gr = getgrnam(name) {
                    list.gids.insert(gr.pointee.gr_gid)
                } else {
                    problems.append("client_allowlist: no such group '\(name)'; create it (groupadd \(name)) or remove @\(name) from client_allowlist")
                }
            } else if let uid = UInt32(entry) {
                list.uids.insert(uid)
            } else if let pw = getpwnam(entry) {
                list.uids.insert(pw.pointee.pw_uid)
            } else {
                problems.append("client_allowlist: no such user '\(entry)'; correct the name or remove it from client_allowlist")
            }
        }
        return (list, problems)
    }

    func allows(_ peer: PeerCredentials) -> Bool {
        uids.contains(peer.uid) || gids.contains(peer.gid)
    }
}
