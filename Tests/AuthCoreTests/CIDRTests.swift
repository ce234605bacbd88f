import AuthCore
import Testing

/// `trusted_networks` entries and the addresses they are matched against.
@Suite struct CIDRTests {
    @Test func cidrMatching() {
        #expect(CIDR("192.0.2.0/24")!.contains("192.0.2.77"))
        #expect(!CIDR("192.0.2.0/24")!.contains("192.0.3.1"))
        #expect(CIDR("127.0.0.1")!.contains("127.0.0.1"))
        #expect(CIDR("2001:db8::/32")!.contains("2001:db8:ffff::1"))
        #expect(!CIDR("2001:db8::/32")!.contains("192.0.2.1"))
        #expect(CIDR("bogus") == nil)
        #expect(CIDR("10.0.0.0/33") == nil)
    }

    @Test func prefixBounds() {
        #expect(CIDR("0.0.0.0/0")!.contains("203.0.113.1"))
        #expect(CIDR("2001:db8::1/128")!.contains("2001:db8::1"))
        #expect(!CIDR("2001:db8::1/128")!.contains("2001:db8::2"))
        #expect(CIDR("2001:db8::/129") == nil)
        #expect(CIDR("192.0.2.0/-1") == nil)
        #expect(CIDR("192.0.2.0/x") == nil)
        #expect(CIDR("") == nil)
        #expect(CIDR("/24") == nil)
    }

    /// Postfix reports an IPv4 client on a dual-stack socket as `::ffff:a.b.c.d`: it is the IPv4 address.
    @Test func ipv4MappedAddressesAreIPv4() {
        #expect(CIDR("192.0.2.0/24")!.contains("::ffff:192.0.2.5"))
        #expect(CIDR("::ffff:192.0.2.0/24")!.contains("192.0.2.5"))
        #expect(IPAddress.bytes("::ffff:192.0.2.5") == [192, 0, 2, 5])
        #expect(IPAddress.bytes("2001:db8::1")?.count == 16)
        #expect(IPAddress.bytes("unknown") == nil)
        #expect(IPAddress.bytes("") == nil)
    }
}
