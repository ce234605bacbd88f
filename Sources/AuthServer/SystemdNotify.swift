#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram per state change to `$NOTIFY_SOCKET`
/// (a path, or an abstract socket when it starts with `@`). Does nothing outside systemd.
enum SystemdNotify {
    static let socketPath: String? = getenv("NOTIFY_SOCKET").map { String(cString: $0) }

    static var isAvailable: Bool { socketPath != nil }

    static func ready(status: String) { send("READY=1\nSTATUS=\(status)") }
    static func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(monotonicMicroseconds())") }
    static func stopping() { send("STOPPING=1") }
    static func status(_ text: String) { send("STATUS=\(text)") }

    static func send(_ message: String) {
        guard let path = socketPath, !path.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            if !abstract { raw[bytes.count] = 0 }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}
