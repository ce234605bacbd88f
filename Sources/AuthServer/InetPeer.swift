import AuthConfig
import AuthCore
import NIOCore

/// The address of a client that connected over TCP, for `inet_clients` and the log (`peer=`).
struct InetPeer: Sendable {
    /// The numeric address; nil when the kernel gave none (the connection is then refused).
    let ip: String?
    /// `HOST:PORT`, IPv6 in brackets; `unknown` without an address.
    let text: String

    init(_ address: SocketAddress?) {
        guard let address, let ip = address.ipAddress, let port = address.port else {
            self.ip = nil
            self.text = "unknown"
            return
        }
        self.ip = ip
        self.text = ListenEndpoint.addressText(host: ip, port: port)
    }

    /// True when one of `networks` holds the address (an IPv4-mapped IPv6 address counts as IPv4).
    func isAllowed(by networks: [CIDR]) -> Bool {
        guard let ip else { return false }
        return networks.contains { $0.contains(ip) }
    }
}
