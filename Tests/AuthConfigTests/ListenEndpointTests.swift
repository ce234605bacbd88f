import AuthConfig
import AuthCore
import PassdbRegistry
import Testing

/// `listen` with several endpoints (`PATH`, `inet:HOST:PORT`, `inet:[IPv6]:PORT`), `inet_clients` and the
/// TLS key pair: what is accepted, in what form, and the file:line message of each mistake.
@Suite struct ListenEndpointTests {
    func parse(_ text: String) throws(ConfigErrors) -> Settings {
        try Settings.parse(text: text, file: "/etc/saslgate/x.conf", passdbDrivers: PassdbRegistry.catalog)
    }

    func errors(_ text: String) -> String {
        do {
            _ = try parse(text)
            return "(no error)"
        } catch {
            return error.description
        }
    }

    @Test func severalEndpointsInOrder() throws {
        let s = try parse("listen = /var/spool/postfix/private/auth inet:10.0.0.5:12345,\n  inet:[::1]:12346 run/auth\n")
        #expect(s.listen == [
            .unix(path: "/var/spool/postfix/private/auth"), .inet(host: "10.0.0.5", port: 12345),
            .inet(host: "::1", port: 12346), .unix(path: "/etc/saslgate/run/auth"),
        ])
        #expect(s.listen.map(\.description) == [
            "/var/spool/postfix/private/auth", "inet:10.0.0.5:12345", "inet:[::1]:12346", "/etc/saslgate/run/auth",
        ])
        #expect(s.unixListenPaths == ["/var/spool/postfix/private/auth", "/etc/saslgate/run/auth"])
    }

    @Test func theDefaultIsPostfixsPrivateSocketAndLoopbackClients() {
        let s = Settings()
        #expect(s.listen == [.unix(path: "/var/spool/postfix/private/auth")])
        #expect(s.inetClientsText == "127.0.0.0/8 ::1/128")
        #expect(s.inetTlsCert == nil && s.inetTlsKey == nil && !s.inetTLS)
    }

    /// IPv6 addresses are compared in their canonical form: the same endpoint written twice is found.
    @Test func addressesAreCanonical() throws {
        let s = try parse("listen = inet:[0:0::1]:25 inet:[2001:DB8::5]:26")
        #expect(s.listen == [.inet(host: "::1", port: 25), .inet(host: "2001:db8::5", port: 26)])
        #expect(errors("listen = inet:[::1]:25 inet:[0::1]:25").contains("x.conf:1: listen: inet:[::1]:25 is listed twice; remove one"))
    }

    @Test(arguments: [
        ("listen = inet:127.0.0.1:0", "x.conf:1: listen: 'inet:127.0.0.1:0': the port '0' must be a number from 1 to 65535"),
        ("listen = inet:127.0.0.1:65536", "x.conf:1: listen: 'inet:127.0.0.1:65536': the port '65536' must be a number from 1 to 65535"),
        ("listen = inet:127.0.0.1:+25", "x.conf:1: listen: 'inet:127.0.0.1:+25': the port '+25' must be a number from 1 to 65535"),
        ("listen = inet:127.0.0.1:smtp", "x.conf:1: listen: 'inet:127.0.0.1:smtp': the port 'smtp' must be"),
        ("listen = inet:127.0.0.1", "x.conf:1: listen: 'inet:127.0.0.1' has no port; write inet:HOST:PORT"),
        ("listen = inet:::1:25", "x.conf:1: listen: 'inet:::1:25': an IPv6 address needs brackets: inet:[::1]:25"),
        ("listen = inet:[::1:25", "x.conf:1: listen: 'inet:[::1:25': the IPv6 address has no closing ']'"),
        ("listen = inet:[::1]25", "x.conf:1: listen: 'inet:[::1]25': a port must follow the address"),
        ("listen = inet:[10.0.0.1]:25", "x.conf:1: listen: 'inet:[10.0.0.1]:25': brackets are for IPv6 addresses only; write inet:10.0.0.1:25"),
        ("listen = inet::25", "x.conf:1: listen: 'inet::25' has no address"),
        ("listen = inet:mail.example.org:25", "x.conf:1: listen: 'inet:mail.example.org:25': 'mail.example.org' is not a numeric IP address"),
        ("listen = inet:10.0.0.256:25", "x.conf:1: listen: 'inet:10.0.0.256:25': '10.0.0.256' is not a numeric IP address"),
        ("listen = 10.0.0.5:12345", "x.conf:1: listen: '10.0.0.5:12345' is neither a socket path nor inet:HOST:PORT; for TCP write inet:10.0.0.5:12345"),
        ("listen = /run/a /run/a", "x.conf:1: listen: /run/a is listed twice; remove one"),
        ("listen =", "x.conf:1: listen needs a socket path or inet:HOST:PORT"),
    ])
    func mistakesNameTheLineAndTheFix(text: String, expected: String) {
        let got = errors("passdbs = passwd-file:/u\n\n" + text)
        #expect(got.contains(expected.replacingOccurrences(of: "x.conf:1:", with: "x.conf:3:")), "got: \(got)")
    }

    @Test func aTooLongSocketPathAndTooManyEndpoints() {
        let long = "/" + String(repeating: "a", count: 120)
        #expect(errors("listen = \(long)").contains("is longer than 107 bytes"))
        let many = (1...17).map { "inet:127.0.0.1:\(2000 + $0)" }.joined(separator: " ")
        #expect(errors("listen = \(many)").contains("x.conf:1: listen names 17 endpoints; at most 16 are allowed"))
    }

    @Test func inetClients() throws {
        let s = try parse("inet_clients = 10.0.0.0/8, 192.0.2.7 2001:db8::/32")
        #expect(s.inetClientsText == "10.0.0.0/8 192.0.2.7/32 2001:db8::/32")
        #expect(s.inetClients.contains { $0.contains("10.200.3.4") })
        #expect(!s.inetClients.contains { $0.contains("127.0.0.1") })
        // An IPv4 client on an IPv6 socket (IPv4-mapped) is matched as the IPv4 address it is.
        #expect(s.inetClients.contains { $0.contains("::ffff:10.1.1.1") })
        #expect(Settings().inetClients.contains { $0.contains("127.0.0.1") })
        #expect(Settings().inetClients.contains { $0.contains("::1") })
        #expect(!Settings().inetClients.contains { $0.contains("10.0.0.1") })

        #expect(errors("inet_clients = 10.0.0.0/33 example.org").contains(
            "x.conf:1: inet_clients: '10.0.0.0/33' is not an address or network like 10.0.0.0/24 or 2001:db8::/32"))
        #expect(errors("inet_clients = 10.0.0.0/33 example.org").contains("'example.org' is not an address or network"))
        // Nobody could reach a TCP endpoint: an error where it is written.
        #expect(errors("listen = inet:127.0.0.1:2000\ninet_clients =").contains(
            "x.conf:2: listen has inet: endpoints but inet_clients is empty"))
        // Without TCP endpoints an empty list is no problem.
        #expect(try parse("inet_clients =").inetClients.isEmpty)
    }

    @Test func tlsNeedsBothFiles() throws {
        #expect(errors("listen = inet:127.0.0.1:2000\ninet_tls_cert = cert.pem").contains(
            "x.conf:2: inet_tls_cert is set but inet_tls_key is not; set both"))
        #expect(errors("\ninet_tls_key = /k.pem").contains("x.conf:2: inet_tls_key is set but inet_tls_cert is not"))
        let s = try parse("inet_tls_cert = tls/cert.pem\ninet_tls_key = /etc/ssl/private/k.pem")
        #expect(s.inetTLS && s.inetTlsCert == "/etc/saslgate/tls/cert.pem" && s.inetTlsKey == "/etc/ssl/private/k.pem")
    }

    @Test func theCIDRDescriptionIsWhatWasParsed() {
        #expect(CIDR("10.1.0.0/16")?.description == "10.1.0.0/16")
        #expect(CIDR("::1")?.description == "::1/128")
    }
}
