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

    struct Problem: Error, CustomStringConvertible { var description: String }

    init(_ entries: [String]) throws {
        for entry in entries {
            if entry.hasPrefix("@") {
                let name = String(entry.dropFirst())
                guard let gr = getgrnam(name) else { throw Problem(description: "client_allowlist: no such group '\(name)'") }
                gids.insert(gr.pointee.gr_gid)
            } else if let uid = UInt32(entry) {
                uids.insert(uid)
            } else {
                guard let pw = getpwnam(entry) else { throw Problem(description: "client_allowlist: no such user '\(entry)'") }
                uids.insert(pw.pointee.pw_uid)
            }
        }
    }

    func allows(_ peer: PeerCredentials) -> Bool {
        uids.contains(peer.uid) || gids.contains(peer.gid)
    }
}
