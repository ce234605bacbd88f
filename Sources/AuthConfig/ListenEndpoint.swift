#if canImport(Glibc)
import Glibc
#endif

/// One place the daemon listens (`listen`): a Unix socket path, or a TCP address written the way
/// Postfix writes `smtpd_sasl_path` (`inet:HOST:PORT`, `inet:[IPv6]:PORT`). The host is a numeric
/// address: a name would make what is bound depend on DNS at start-up.
public enum ListenEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// An absolute socket path.
    case unix(path: String)
    /// A numeric IPv4 or IPv6 address (in its canonical text form, without brackets) and a port.
    case inet(host: String, port: Int)

    /// Most endpoints one `listen` may name.
    public static let maxCount = 16

    /// As written in the configuration: the path, or `inet:HOST:PORT` with brackets around IPv6.
    public var description: String {
        switch self {
        case .unix(let path): path
        case .inet(let host, let port): "inet:\(Self.bracketed(host)):\(port)"
        }
    }

    /// `HOST:PORT`, IPv6 in brackets (for log lines and messages).
    public static func addressText(host: String, port: Int) -> String { "\(bracketed(host)):\(port)" }

    static func bracketed(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

    public var isInet: Bool {
        if case .inet = self { return true }
        return false
    }

    /// The socket path of a Unix endpoint.
    public var unixPath: String? {
        if case .unix(let path) = self { return path }
        return nil
    }

    /// One endpoint; a relative path is made absolute with `resolve`. The error says what to write.
    public static func parse(_ word: String, resolve: (String) -> String = { $0 }) -> Result<ListenEndpoint, ListenEndpointError> {
        guard word.hasPrefix("inet:") else {
            guard !word.isEmpty else { return .failure(.init("an empty endpoint")) }
            guard !word.contains(":") || word.hasPrefix("/") || word.hasPrefix(".") else {
                return .failure(.init("'\(word)' is neither a socket path nor inet:HOST:PORT; for TCP write inet:\(word)"))
            }
            let path = resolve(word)
            guard path.utf8.count < 108 else {
                return .failure(.init("socket path '\(path)' is longer than 107 bytes (the limit of a Unix socket address)"))
            }
            return .success(.unix(path: path))
        }
        let rest = word.dropFirst("inet:".count)
        let hostText: Substring
        let portText: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                return .failure(.init("'\(word)': the IPv6 address has no closing ']'; write inet:[::1]:PORT"))
            }
            hostText = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else {
                return .failure(.init("'\(word)': a port must follow the address, as in inet:[::1]:12345"))
            }
            portText = after.dropFirst()
            guard hostText.contains(":") else {
                return .failure(.init("'\(word)': brackets are for IPv6 addresses only; write inet:\(hostText):\(portText)"))
            }
        } else {
            guard let colon = rest.lastIndex(of: ":") else {
                return .failure(.init("'\(word)' has no port; write inet:HOST:PORT, e.g. inet:127.0.0.1:12345"))
            }
            hostText = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
            if hostText.contains(":") {
                return .failure(.init("'\(word)': an IPv6 address needs brackets: inet:[\(hostText)]:\(portText)"))
            }
        }
        guard !hostText.isEmpty else {
            return .failure(.init("'\(word)' has no address; write inet:127.0.0.1:PORT (or inet:0.0.0.0:PORT for every IPv4 address)"))
        }
        guard let host = canonicalAddress(String(hostText)) else {
            return .failure(.init("'\(word)': '\(hostText)' is not a numeric IP address (host names are not resolved); write e.g. inet:10.0.0.5:PORT or inet:[2001:db8::5]:PORT"))
        }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (1...65535).contains(port) else {
            return .failure(.init("'\(word)': the port '\(portText)' must be a number from 1 to 65535"))
        }
        return .success(.inet(host: host, port: port))
    }

    /// A `listen` value: endpoints separated by white space (or commas). Duplicates and too many
    /// endpoints are errors; every problem is returned.
    public static func parseList(_ value: String, resolve: (String) -> String = { $0 }) -> ([ListenEndpoint], [String]) {
        var endpoints: [ListenEndpoint] = []
        var problems: [String] = []
        let words = Settings.words(value)
        if words.isEmpty {
            return ([], ["listen needs a socket path or inet:HOST:PORT, e.g. 'listen = /var/spool/postfix/private/auth'"])
        }
        if words.count > maxCount {
            problems.append("listen names \(words.count) endpoints; at most \(maxCount) are allowed")
        }
        for word in words {
            switch parse(word, resolve: resolve) {
            case .success(let endpoint):
                if endpoints.contains(endpoint) {
                    problems.append("listen: \(endpoint) is listed twice; remove one")
                } else {
                    endpoints.append(endpoint)
                }
            case .failure(let error):
                problems.append("listen: \(error.message)")
            }
        }
        return (endpoints, problems)
    }

    /// The address in the kernel's canonical text (`inet_ntop` of `inet_pton`): `[0::1]` and `[::1]` are
    /// the same endpoint. nil when `text` is not a numeric address.
    static func canonicalAddress(_ text: String) -> String? {
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            guard inet_ntop(AF_INET, &v4, &out, socklen_t(out.count)) != nil else { return nil }
        } else {
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, text, &v6) == 1, inet_ntop(AF_INET6, &v6, &out, socklen_t(out.count)) != nil else {
                return nil
            }
        }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why an endpoint cannot be used (without file and line).
public struct ListenEndpointError: Error, Sendable, CustomStringConvertible {
    public var message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
