import AuthCore
import Crypto
import Testing

@testable import AuthCrypto

@Suite("CRAM-MD5 digest and stored context")
struct CRAMMD5Tests {
    static let rfcChallenge = Array("<1896.697170952@postoffice.reston.mci.net>".utf8)

    /// RFC 2195 §2: user tim, password tanstaaftanstaaf.
    @Test func rfc2195Vector() {
        let password = Secret("tanstaaftanstaaf")
        let digest = CRAMMD5.digest(password: password, challenge: Self.rfcChallenge)
        #expect(Hex.encodeString(digest) == "b913a602c7eda7a495b4e6e7334d3890")
        let context = CRAMMD5.context(password: password)
        #expect(CRAMMD5.digest(context: context, challenge: Self.rfcChallenge).map(Hex.encodeString) == "b913a602c7eda7a495b4e6e7334d3890")
        let response = CRAMMD5.response(user: "tim", password: password, challenge: Self.rfcChallenge)
        #expect(Base64.encodeString(response) == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
    }

    /// `doveadm pw -s CRAM-MD5 -p password`: pins Dovecot's byte order, outer state first.
    @Test func dovecotStoredContextFormat() {
        let context = CRAMMD5.context(password: Secret("password"))
        #expect(context.count == CRAMMD5.contextLength)
        #expect(Hex.encodeString(context.bytes) == "9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740")
        #expect("\(context)" == "<hidden>")
        let raw = Array("password".utf8).withUnsafeBufferPointer { CRAMMD5.context(password: $0) }
        #expect(raw == context.bytes, "the buffer and the Secret variants agree")
    }

    /// The stored context finishes to swift-crypto's HMAC-MD5, for keys around the 64-byte block (a
    /// longer key is hashed first) and challenges around MD5's padding boundaries.
    @Test(arguments: [0, 1, 8, 55, 63, 64, 65, 100, 200])
    func contextFinishesToHMAC(passwordLength: Int) {
        let key = (0..<passwordLength).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let context = CRAMMD5.context(password: Secret(key))
        for challengeLength in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
            let challenge = (0..<challengeLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) }
            let theirs = Array(HMAC<Insecure.MD5>.authenticationCode(for: challenge, using: SymmetricKey(data: key)))
            #expect(CRAMMD5.digest(password: Secret(key), challenge: challenge) == theirs)
            #expect(CRAMMD5.digest(context: context, challenge: challenge) == theirs, "challenge \(challengeLength)")
        }
    }

    @Test func contextOfTheWrongLengthIsRefused() {
        #expect(CRAMMD5.digest(context: Secret([UInt8](repeating: 1, count: 31)), challenge: [1]) == nil)
    }

    /// The MD5 behind the context against swift-crypto's, across the padding boundaries.
    @Test func md5MatchesSwiftCrypto() {
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 200] {
            let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            #expect(MD5Block.digest(data) == Array(Insecure.MD5.hash(data: data)), "length \(length)")
        }
    }
}
