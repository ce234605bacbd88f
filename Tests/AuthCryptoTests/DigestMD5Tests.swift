import AuthCore
import AuthCrypto
import Testing

@Suite("DIGEST-MD5 HA1 and digests")
struct DigestMD5Tests {
    /// RFC 2831 §4: user chris, realm elwood.innosoft.com, password secret.
    @Test func rfc2831Vector() {
        let ha1 = DigestMD5.ha1(user: "chris", realm: "elwood.innosoft.com", password: Secret("secret"))
        #expect(Hex.encodeString(ha1.bytes) == "eb5a750053e4d2c34aa84bbc9b0b6ee7")
        let d = DigestMD5.digests(
            ha1: ha1, nonce: "OA6MG9tEQGm2hh", cnonce: "OA6MHXh6VqTrRk", digestURI: "imap/elwood.innosoft.com")
        #expect(d?.response == "d388dad90d4bbd760a152321f2143af7")
        #expect(d?.rspauth == "ea40f60335c427b5527b84dbabcdfffd")
    }

    @Test func ha1OfTheWrongLengthIsRefused() {
        #expect(DigestMD5.digests(ha1: Secret([1, 2, 3]), nonce: "n", cnonce: "c", digestURI: "a/b") == nil)
    }

    @Test func authzidChangesTheDigests() {
        let ha1 = DigestMD5.ha1(user: "chris", realm: "elwood.innosoft.com", password: Secret("secret"))
        let plain = DigestMD5.digests(ha1: ha1, nonce: "n", cnonce: "c", digestURI: "smtp/h")
        let asOther = DigestMD5.digests(ha1: ha1, nonce: "n", cnonce: "c", authzid: "other", digestURI: "smtp/h")
        #expect(plain != nil && asOther != nil)
        #expect(plain?.response != asOther?.response && plain?.rspauth != asOther?.rspauth)
    }

    /// Dovecot's stored `{DIGEST-MD5}` splits the login name at its last `@`; no `@` means the empty realm.
    @Test(arguments: [
        ("chris@elwood.innosoft.com", "chris", "elwood.innosoft.com"),
        ("a@b@example.org", "a@b", "example.org"),
        ("chris", "chris", ""),
        ("chris@", "chris", ""),
    ])
    func ha1OfALoginName(login: String, user: String, realm: String) {
        let password = Array("secret".utf8)
        let fromLogin = password.withUnsafeBufferPointer { DigestMD5.ha1(login: login, password: $0) }
        let fromParts = DigestMD5.ha1(user: user, realm: realm, password: Secret(password))
        #expect(fromLogin == fromParts.bytes)
    }
}
