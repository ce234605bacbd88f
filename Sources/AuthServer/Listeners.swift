#if canImport(Glibc)
import Glibc
#endif
import AuthConfig
import Logging

/// One listening socket the daemon serves: what it is bound to and its descriptor.
struct Listener {
    let endpoint: ListenEndpoint
    let fd: Int32
    /// The socket file we created (removed at shutdown if it is still ours); nil for TCP and for
    /// sockets systemd passed (systemd owns their files).
    let socketFile: (path: String, device: UInt64, inode: UInt64)?
}

/// Opening the listening sockets: every configured endpoint, or every socket systemd passed.
enum Listeners {
    static let backlog: Int32 = 1024

    /// The sockets of `listen`, in order. A Unix socket is bound privately and renamed into place
    /// (`SocketPath.bindPrivately`); a TCP one is bound to its address. If one fails, the ones
    /// already bound are closed again and the error names the endpoint.
    static func bindConfigured(_ settings: Settings) throws -> [Listener] {
        var listeners: [Listener] = []
        do {
            for endpoint in settings.listen {
                switch endpoint {
                case .unix(let path):
                    let owner = try SocketPath.owner(user: settings.listenUser, group: settings.listenGroup)
                    let bound = try SocketPath.bindPrivately(
                        path, mode: settings.listenMode, owner: owner, backlog: backlog,
                        createParent: AuthServer.mayCreateSocketDirectory(path, settings))
                    listeners.append(
                        Listener(endpoint: endpoint, fd: bound.fd, socketFile: (path, bound.device, bound.inode)))
                case .inet(let host, let port):
                    let fd = try InetSocket.bind(host: host, port: port, backlog: backlog)
                    listeners.append(Listener(endpoint: endpoint, fd: fd, socketFile: nil))
                }
            }
        } catch {
            close(listeners)
            throw error
        }
        return listeners
    }

    /// The sockets systemd passed (`fds`), each identified by its address. A passed socket that no
    /// `listen` endpoint names, or an endpoint systemd did not pass, is logged as a warning: what was
    /// passed is served all the same (the unit decides). A descriptor that is not a listening stream
    /// socket is logged as an error and left alone; none usable at all stops the start.
    static func adoptSystemd(_ fds: [Int32], configured: [ListenEndpoint], logger: Logger) throws -> [Listener] {
        var listeners: [Listener] = []
        for fd in fds {
            switch InetSocket.identify(fd) {
            case .success(let endpoint):
                if !configured.contains(endpoint) {
                    logger.warning("systemd passed \(endpoint) (fd \(fd)), which 'listen' does not name; serving it (add it to listen, or remove its ListenStream=)")
                }
                listeners.append(Listener(endpoint: endpoint, fd: fd, socketFile: nil))
            case .failure(let problem):
                logger.error("ignoring a socket systemd passed: \(problem)")
            }
        }
        for endpoint in configured where !listeners.contains(where: { $0.endpoint == endpoint }) {
            logger.warning("'listen' names \(endpoint) but systemd did not pass it; it is not served (add ListenStream=\(systemdSpelling(endpoint)) to saslgated.socket)")
        }
        guard !listeners.isEmpty else {
            throw SocketPath.Problem(description: "systemd passed \(fds.count) descriptor(s) but none is a listening stream socket; check ListenStream= in saslgated.socket")
        }
        return listeners
    }

    /// How a `ListenStream=` line writes the endpoint.
    static func systemdSpelling(_ endpoint: ListenEndpoint) -> String {
        switch endpoint {
        case .unix(let path): path
        case .inet(let host, let port): ListenEndpoint.addressText(host: host, port: port)
        }
    }

    /// Closes descriptors not yet handed to NIO and removes the socket files we created.
    static func close(_ listeners: [Listener]) {
        for listener in listeners {
            Glibc.close(listener.fd)
            if let file = listener.socketFile {
                SocketPath.removeIfOurs(file.path, device: file.device, inode: file.inode)
            }
        }
    }
}
