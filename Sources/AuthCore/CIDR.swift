#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 network in CIDR notation, or a single address (`trusted_networks`, penalty keys,
/// docs/SECURITY.md); the one parser the config check and the engine share. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is taken as the IPv4 address it
/// carries, on both sides of `contains`.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]
    let prefix: Int

    /// `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a network of one); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let raw = IPAddress.bytes(String(first)) else { return nil }
        let maxPrefix = raw.count * 8
        let p = parts.count == 2 ? Int(parts[1]) : maxPrefix
        guard let p, p >= 0, p <= maxPrefix else { return nil }
        bytes = raw
        prefix = p
    }

    /// `192.0.2.0/24`, `2001:db8::/32` (the address as parsed, in the kernel's canonical form).
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var raw = bytes
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, &raw, &text, socklen_t(text.count)) != nil else { return "?" }
        let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(address)/\(prefix)"
    }

    public func contains(_ address: String) -> Bool {
        guard let other = IPAddress.bytes(address), other.count == bytes.count else { return false }
        var bits = prefix
        for i in 0..<bytes.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if bytes[i] & mask != other[i] & mask { return false }
            bits -= 8
        }
        return true
    }
}

/// Textual IP addresses as the kernel reads them (`inet_pton`).
public enum IPAddress {
    /// The address in network byte order: 4 bytes for IPv4 and for IPv4-mapped IPv6, 16 for other IPv6;
    /// nil when `text` is not an address (Postfix sends `rip=` empty or `unknown` when it has none).
    public static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12...]) }
        return b
    }
}

/// Seconds on the monotonic clock: the default clock of the penalty table and the auth cache (tests pass
/// a manual one).
public enum MonotonicClock {
    public static let now: @Sendable () -> Double = {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
