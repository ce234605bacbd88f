import Foundation
import Testing

@testable import AdminCommands

#if canImport(Glibc)
import Glibc
#endif

/// The CLI side of the control socket: whatever a daemon answers, no control character but the line
/// feed reaches the terminal (the daemon escapes client text itself; this is the second line of defense).
@Suite("saslgate penalty/stats output")
struct ControlOutputTests {
    /// Listens on `path`, answers one connection with `reply` (after reading its command line), closes.
    func serveOnce(path: String, reply: String) -> Int32 {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(rc == 0 && listen(listener, 1) == 0, "cannot listen on \(path)")
        Thread.detachNewThread {
            let conn = accept(listener, nil, nil)
            guard conn >= 0 else { return }
            var byte: UInt8 = 0
            while recv(conn, &byte, 1, 0) == 1 && byte != 0x0A {}
            _ = Array(reply.utf8).withUnsafeBytes { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(conn)
        }
        return listener
    }

    @Test func penaltyListPrintsNoControlCharacters() {
        let dir = TempDir()
        let path = dir.file("control")
        // What an older daemon printed for the login name "x<ESC>[2J<CR><U+009B>y": raw.
        let listener = serveOnce(path: path, reply: "ip 192.0.2.9 failures=1\nuser x\u{1b}[2J\r\u{9b}y failures=1\n")
        defer { close(listener) }
        let r = saslgate(["penalty", "list", "--control", path])
        #expect(r.code == 0, "\(r.all)")
        #expect(r.out == #"ip 192.0.2.9 failures=1"# + "\n" + #"user x\x1b[2J\x0d\x9by failures=1"#)
        #expect(!r.out.unicodeScalars.contains { $0 != "\n" && $0.properties.generalCategory == .control })
    }

    @Test func neutralizingKeepsLineFeedsAndOtherText() {
        #expect("a\tb\u{7f}\u{85}\n".neutralizingControlCharacters() == #"a\x09b\x7f\x85"# + "\n")
        #expect("jörg ✓\n".neutralizingControlCharacters() == "jörg ✓\n")
    }
}
