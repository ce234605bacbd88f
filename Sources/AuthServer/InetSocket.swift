#if canImport(Glibc)
import Glibc
#endif
import AuthConfig

/// TCP listening sockets: binding a configured `inet:HOST:PORT`, and telling what a descriptor that
/// systemd passed is bound to.
enum InetSocket {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// A listening TCP socket on `host` (a numeric address) and `port`. IPv6 sockets are IPv6 only, so
    /// `inet:0.0.0.0:P` and `inet:[::]:P` are two endpoints that can both be bound.
    static func bind(host: String, port: Int, backlog: Int32) throws -> Int32 {
        let endpoint = ListenEndpoint.inet(host: host, port: port)
        let isV6 = host.contains(":")
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Problem(description: "cannot listen on \(endpoint): socket: \(errnoText())") }
        var keep = false
        defer { if !keep { close(fd) } }
        var one: Int32 = 1
        // A restarted daemon binds again at once, while old connections are in TIME_WAIT.
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw Problem(description: "cannot listen on \(endpoint): SO_REUSEADDR: \(errnoText())")
        }
        var rc: Int32
        if isV6 {
            guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw Problem(description: "cannot listen on \(endpoint): IPV6_V6ONLY: \(errnoText())")
            }
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else {
                throw Problem(description: "cannot listen on \(endpoint): not an IPv6 address")
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
                throw Problem(description: "cannot listen on \(endpoint): not an IPv4 address")
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard rc == 0 else {
            let e = errno
            let hint: String
            switch e {
            case EADDRINUSE: hint = " (another server listens there; stop it or choose another port)"
            case EADDRNOTAVAIL: hint = " (no interface of this host has that address)"
            case EACCES: hint = " (ports below 1024 need root)"
            default: hint = ""
            }
            throw Problem(description: "cannot listen on \(endpoint): bind: \(String(cString: strerror(e)))\(hint)")
        }
        guard listen(fd, backlog) == 0 else {
            throw Problem(description: "cannot listen on \(endpoint): listen: \(errnoText())")
        }
        keep = true
        return fd
    }

    /// What a passed descriptor is: a listening stream socket's endpoint (its Unix path, or its TCP
    /// address), or why it cannot be served.
    static func identify(_ fd: Int32) -> Result<ListenEndpoint, Problem> {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            return .failure(Problem(description: "fd \(fd) is not a socket (\(errnoText()))"))
        }
        guard type == Int32(SOCK_STREAM.rawValue) else {
            return .failure(Problem(description: "fd \(fd) is not a stream socket (ListenStream= is needed, not ListenDatagram=)"))
        }
        var accepting: Int32 = 0
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0, accepting != 0 else {
            return .failure(Problem(description: "fd \(fd) is not a listening socket (Accept=no is needed)"))
        }
        var storage = sockaddr_storage()
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return .failure(Problem(description: "fd \(fd): getsockname: \(errnoText())")) }
        switch Int32(storage.ss_family) {
        case AF_UNIX:
            let path = withUnsafeBytes(of: &storage) { raw -> String in
                let offset = MemoryLayout<sa_family_t>.size
                let end = min(Int(length), raw.count)
                guard end > offset else { return "" }
                let bytes = raw[offset..<end].prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            guard !path.isEmpty else {
                return .failure(Problem(description: "fd \(fd) is an unnamed or abstract Unix socket"))
            }
            return .success(.unix(path: path))
        case AF_INET, AF_INET6:
            guard let (host, port) = numericAddress(&storage) else {
                return .failure(Problem(description: "fd \(fd): its address cannot be read"))
            }
            return .success(.inet(host: host, port: port))
        default:
            return .failure(Problem(description: "fd \(fd) is a socket of address family \(storage.ss_family), neither Unix nor TCP"))
        }
    }

    /// The numeric host and the port of an AF_INET or AF_INET6 address.
    static func numericAddress(_ storage: inout sockaddr_storage) -> (String, Int)? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let port: UInt16
        switch Int32(storage.ss_family) {
        case AF_INET:
            let ok = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin -> Bool in
                    inet_ntop(AF_INET, &sin.pointee.sin_addr, &text, socklen_t(text.count)) != nil
                }
            }
            guard ok else { return nil }
            port = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) } }
        case AF_INET6:
            let ok = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 -> Bool in
                    inet_ntop(AF_INET6, &sin6.pointee.sin6_addr, &text, socklen_t(text.count)) != nil
                }
            }
            guard ok else { return nil }
            port = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) } }
        default:
            return nil
        }
        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (host, Int(port))
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
