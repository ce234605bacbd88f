import AuthConfig

#if canImport(Glibc)
import Glibc
#endif

/// Connecting the CLI to a daemon endpoint: a Unix socket path, or `inet:HOST:PORT` (the TCP
/// endpoints of `listen`), within a deadline. The TCP connection is plain: a TLS endpoint
/// (`inet_tls_cert`) needs a TLS client such as `openssl s_client`.
enum ClientSocket {
    /// A connected stream socket (blocking, close-on-exec).
    static func connect(_ target: String, deadline: ContinuousClock.Instant) throws(CLIError) -> Int32 {
        guard target.hasPrefix("inet:") else { return try connectUnix(target) }
        switch ListenEndpoint.parse(target) {
        case .success(.inet(let host, let port)):
            return try connectInet(host: host, port: port, target: target, deadline: deadline)
        case .success(.unix(let path)):
            return try connectUnix(path)
        case .failure(let error):
            throw .failure("\(error.message)")
        }
    }

    private static func connectUnix(_ path: String) throws(CLIError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < capacity else {
            throw .failure("socket path \(path) is empty or longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
            raw[pathBytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failure("socket() failed: \(String(cString: strerror(errno)))") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            switch e {
            case ENOENT:
                throw .failure("\(path) does not exist; is saslgated running? (give the socket with --socket PATH)")
            case ECONNREFUSED: throw .failure("\(path): connection refused; is saslgated running?")
            case EACCES: throw .failure("\(path): permission denied; run as a user that may use the auth socket")
            default: throw .failure("\(path): cannot connect: \(String(cString: strerror(e)))")
            }
        }
        return fd
    }

    /// A non-blocking connect, waited for with poll until `deadline`, then made blocking again (the
    /// line I/O polls before each call).
    private static func connectInet(
        host: String, port: Int, target: String, deadline: ContinuousClock.Instant
    ) throws(CLIError) -> Int32 {
        let isV6 = host.contains(":")
        var storage = sockaddr_storage()
        let length: socklen_t
        if isV6 {
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                    sin6.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                    _ = inet_pton(AF_INET6, host, &sin6.pointee.sin6_addr)
                }
            }
        } else {
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    sin.pointee.sin_family = sa_family_t(AF_INET)
                    sin.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                    _ = inet_pton(AF_INET, host, &sin.pointee.sin_addr)
                }
            }
        }
        let fd = socket(
            isV6 ? AF_INET6 : AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .failure("socket() failed: \(String(cString: strerror(errno)))") }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        var failure: Int32 = 0
        if rc != 0 {
            guard errno == EINPROGRESS else { throw inetFailure(target, errno) }
            while true {
                let remaining = deadline - ContinuousClock.now
                guard remaining > .zero else { throw .failure("\(target): no connection within the timeout; is saslgated listening there?") }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ms = Int32(clamping: remaining.components.seconds * 1000 + 1)
                let n = poll(&p, 1, ms)
                if n < 0 && errno == EINTR { continue }
                if n > 0 { break }
            }
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 else { throw inetFailure(target, errno) }
            if failure != 0 { throw inetFailure(target, failure) }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        ok = true
        return fd
    }

    private static func inetFailure(_ target: String, _ code: Int32) -> CLIError {
        switch code {
        case ECONNREFUSED: .failure("\(target): connection refused; is saslgated listening there?")
        default: .failure("\(target): cannot connect: \(String(cString: strerror(code)))")
        }
    }
}
