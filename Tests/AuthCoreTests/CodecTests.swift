import AuthCore
import Testing

@Suite("Base64, hex and wiping")
struct CodecTests {
    @Test func base64AppendsToWhatIsThere() {
        for n in 0..<20 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var out = Array("resp=".utf8)
            Base64.append(bytes, to: &out)
            #expect(out == Array("resp=".utf8) + Base64.encode(bytes))
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
            // A non-contiguous collection takes the copying path and gives the same text.
            var viaRange: [UInt8] = []
            Base64.append(bytes.lazy.map { $0 }, to: &viaRange)
            #expect(viaRange == Base64.encode(bytes))
        }
        #expect(Base64.encodeString(Array("pencil".utf8)) == "cGVuY2ls")
    }

    @Test func canonicalDecodingRefusesStrayBits() {
        #expect(Base64.decode(Array("cGVuY2ls".utf8), canonical: true) == Array("pencil".utf8))
        #expect(Base64.decode(Array("QQ==".utf8), canonical: true) == [0x41])
        #expect(Base64.decode(Array("QR==".utf8)) == [0x41])
        #expect(Base64.decode(Array("QR==".utf8), canonical: true) == nil)
        #expect(Base64.decode(Array("QQ".utf8)) == nil)
    }

    @Test(arguments: [
        ("", [] as [UInt8]?), ("Zm9v", Array("foo".utf8)), ("Zm8=", Array("fo".utf8)), ("Zg==", Array("f".utf8)),
        ("Zm9vYmFy", Array("foobar".utf8)), ("Zg==Zg==", nil), ("Z===", nil), ("====", nil), ("Zg=A", nil),
        ("Zm9v\n", nil), ("Zm 9", nil), ("Zm9*", nil),
    ] as [(String, [UInt8]?)])
    func strictDecoding(input: String, expected: [UInt8]?) {
        #expect(Base64.decode(Array(input.utf8)) == expected)
    }

    @Test func hex() {
        #expect(Hex.encodeString([0x00, 0xAB, 0xFF]) == "00abff")
        #expect(Hex.decode(Array("00AbfF".utf8)) == [0x00, 0xAB, 0xFF])
        #expect(Hex.decode(Array("0g".utf8)) == nil)
        #expect(Hex.decode(Array("abc".utf8)) == nil)
        #expect(Hex.isLower(Array("00abff".utf8)) && !Hex.isLower(Array("00ABFF".utf8)))
    }

    @Test func wipeEmpties() {
        var bytes: [UInt8] = [1, 2, 3, 4]
        bytes.wipe()
        #expect(bytes.isEmpty)
    }
}

@Suite("user@realm")
struct LoginNameTests {
    @Test(arguments: [
        ("alice@example.org", "alice", "example.org"),
        ("a@b@example.org", "a@b", "example.org"),
        ("alice", "alice", nil),
        ("@example.org", "", "example.org"),
        ("alice@", "alice", ""),
        ("", "", nil),
    ] as [(String, String, String?)])
    func splitsAtTheLastAt(name: String, local: String, realm: String?) {
        let parts = LoginName.split(name)
        #expect(parts.local == local)
        #expect(parts.realm.map(String.init) == realm)
    }

    /// An `@` followed by a combining mark is one Character, but still the separator.
    @Test func combiningMarkAfterTheAt() {
        let parts = LoginName.split("alice@\u{301}example.org")
        #expect(parts.local == "alice")
        #expect(parts.realm.map { Array($0.utf8) } == Array("\u{301}example.org".utf8))
    }
}

@Suite("Credential kinds")
struct CredentialSchemeTests {
    @Test func scramHashesMapBothWays() {
        for hash in [SCRAMHash.sha1, .sha256] { #expect(hash.credentialScheme.scramHash == hash) }
        #expect(CredentialScheme.allCases.compactMap(\.scramHash) == [.sha1, .sha256])
    }
}
