import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TLS on the TCP endpoints (`inet_tls_cert`, `inet_tls_key`) with a certificate made by openssl in a
/// temporary directory: `openssl s_client` completes the handshake and authenticates; a plain client
/// gets no greeting; a world-readable key stops the start with file:line; SIGHUP re-reads the files.
@Suite("TLS on TCP listeners", .serialized)
struct InetTLSTests {
    static let openssl = "/usr/bin/openssl"

    /// A self-signed certificate for `name` in `dir` (cert.pem, key.pem with mode 0600).
    static func makeCertificate(in dir: String, name: String, prefix: String = "") throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: openssl)
        p.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=\(name)",
            "-keyout", dir + "/\(prefix)key.pem", "-out", dir + "/\(prefix)cert.pem",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("openssl req failed") }
        chmod(dir + "/\(prefix)key.pem", 0o600)
    }

    /// `openssl s_client` connected to `port`, fed `input`, whose standard input stays open for 3 s (time
    /// for the answers) and then ends, which ends the client; its whole output (stdout and stderr).
    static func sClient(port: Int, extra: [String] = [], input: String) throws -> String {
        let file = NSTemporaryDirectory() + "saslgate-tls-input-" + UUID().uuidString.prefix(8)
        try input.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let p = Process()
        let out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = [
            "-c", "(cat \"$1\"; sleep 3) | timeout -s KILL 15 \(openssl) s_client -connect 127.0.0.1:\(port) -brief \(extra.joined(separator: " ")) 2>&1",
            "sh", file,
        ]
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text
    }

    static let exchange =
        "VERSION\t1\t0\nCPID\t77\nAUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.9\tresp=\(b64("\0test\0testpass"))\n"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: openssl)))
    func aTLSClientAuthenticatesAndAPlainClientGetsNothing() throws {
        let port = try freePort()
        let certs = NSTemporaryDirectory() + "saslgate-tls-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: certs) }
        try Self.makeCertificate(in: certs, name: "first.test")
        try Self.makeCertificate(in: certs, name: "second.test", prefix: "next-")
        let d = try DaemonUnderTest(
            extraConfig: "inet_tls_cert = \(certs)/cert.pem\ninet_tls_key = \(certs)/key.pem",
            extraListen: "inet:127.0.0.1:\(port)")
        defer { d.stop() }
        #expect(d.waitForLog("listening address=127.0.0.1:\(port) mechanisms=\"PLAIN LOGIN\" tls=yes"), "\(d.log)")

        let out = try Self.sClient(port: port, input: Self.exchange)
        #expect(out.contains("CN = first.test") || out.contains("CN=first.test"), "\(out)")
        #expect(out.contains("Protocol version: TLSv1.3") || out.contains("Protocol version: TLSv1.2"), "\(out)")
        #expect(out.contains("MECH\tPLAIN"), "\(out)")
        #expect(out.contains("OK\t1\tuser=test@example.org"), "\(out)")
        #expect(d.waitForLog("auth ok result=ok user=test@example.org"))
        #expect(d.log.contains(/rip=192\.0\.2\.9 .* peer=127\.0\.0\.1:\d+/), "\(d.log)")

        // TLS 1.1 is refused (the handshake fails, nothing of the protocol is sent).
        let old = try Self.sClient(
            port: port, extra: ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], input: Self.exchange)
        #expect(!old.contains("MECH\t") && !old.contains("OK\t1"), "\(old)")

        // A client that speaks the protocol in plain text over the TLS endpoint gets no greeting and no
        // answer, and is closed.
        let plain = try AuthClient(inet: "127.0.0.1", port: port)
        plain.send(Self.exchange)
        let received = plain.readUntilClosed(timeout: 10) ?? []
        let text = String(decoding: received, as: UTF8.self)
        #expect(!text.contains("MECH") && !text.contains("VERSION") && !text.contains("OK"), "\(text)")
        #expect(received.count < 64, "only a TLS alert at most: \(received.count) bytes")

        // SIGHUP re-reads the certificate and key: new connections get the new certificate.
        try FileManager.default.removeItem(atPath: certs + "/cert.pem")
        try FileManager.default.removeItem(atPath: certs + "/key.pem")
        try FileManager.default.moveItem(atPath: certs + "/next-cert.pem", toPath: certs + "/cert.pem")
        try FileManager.default.moveItem(atPath: certs + "/next-key.pem", toPath: certs + "/key.pem")
        d.signal(SIGHUP)
        #expect(d.waitForLog("reload done"), "\(d.log)")
        let again = try Self.sClient(port: port, input: Self.exchange)
        #expect(again.contains("CN = second.test") || again.contains("CN=second.test"), "\(again)")
        #expect(again.contains("OK\t1\tuser=test@example.org"), "\(again)")

        // Switching TLS off is a restart, not a reload: the reload is rejected and TLS stays on.
        try d.rewriteConfig { $0.replacingOccurrences(of: "inet_tls_cert = \(certs)/cert.pem\ninet_tls_key = \(certs)/key.pem", with: "") }
        d.signal(SIGHUP)
        #expect(d.waitForLog("TLS on the inet: endpoints was switched off; that takes a restart"), "\(d.log)")
        let still = try Self.sClient(port: port, input: Self.exchange)
        #expect(still.contains("OK\t1\tuser=test@example.org"), "\(still)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: openssl)))
    func keyFileProblemsNameTheLine() throws {
        let dir = NSTemporaryDirectory() + "saslgate-tlskey-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.makeCertificate(in: dir, name: "k.test")
        try "u@x:{PLAIN}p\n".write(toFile: dir + "/users", atomically: true, encoding: .utf8)
        chmod(dir + "/users", 0o640)
        let config = dir + "/c.conf"
        try "listen = \(dir)/s inet:127.0.0.1:\(try freePort())\npassdbs = passwd-file:\(dir)/users\ninet_tls_cert = cert.pem\ninet_tls_key = key.pem\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let good = try runBuilt("saslgated", ["-c", config, "--check"])
        #expect(good.code == 0, "\(good.out)")
        #expect(good.out.contains("TCP with TLS (1.2 or newer)"), "\(good.out)")

        chmod(dir + "/key.pem", 0o644)
        let readable = try runBuilt("saslgated", ["-c", config, "--check"])
        #expect(readable.code == 78)
        #expect(readable.out.contains("c.conf:4: \(dir)/key.pem: the TLS private key (inet_tls_key) is readable by everyone; fix with: chmod o-r"), "\(readable.out)")
        chmod(dir + "/key.pem", 0o600)

        // A key that is not the certificate's, and a certificate file that is no certificate.
        try Self.makeCertificate(in: dir, name: "other.test", prefix: "other-")
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "key.pem", with: "other-key.pem")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let mismatch = try runBuilt("saslgated", ["-c", config, "--check"])
        #expect(mismatch.code == 78)
        #expect(mismatch.out.contains("c.conf:4: inet_tls_cert and inet_tls_key cannot be used together"), "\(mismatch.out)")
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "cert.pem", with: "users")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let notCert = try runBuilt("saslgated", ["-c", config, "--check"])
        #expect(notCert.code == 78)
        #expect(notCert.out.contains("c.conf:3: inet_tls_cert \(dir)/users"), "\(notCert.out)")
    }
}
