public import AuthCore
internal import Crypto
internal import FoundationEssentials  // DataProtocol conformances swift-crypto's API takes

/// DIGEST-MD5 (RFC 2831): HA1, Dovecot's stored `{DIGEST-MD5}` credential, and the two digests of an
/// exchange with qop `auth`.
public enum DigestMD5 {
    /// Bytes in HA1 = MD5(user ":" realm ":" password).
    public static let ha1Length = 16

    /// HA1 = MD5(user ":" realm ":" password), Dovecot's `{DIGEST-MD5}` credential (16 bytes; `doveadm pw`
    /// prints it as hex). Password-equivalent: store it like a password.
    public static func ha1(user: String, realm: String, password: Secret) -> Secret {
        var digest = password.withBytes { ha1(user: user.utf8, realm: realm.utf8, password: $0) }
        defer { digest.wipe() }
        return Secret(digest)
    }

    /// HA1 for a login name `local@realm`, split at its last `@` (Dovecot's `digest_md5_generate`); a
    /// name without `@` has the empty realm. The caller wipes the result.
    public static func ha1(login: String, password: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let (local, realm) = LoginName.split(login)
        return ha1(user: local.utf8, realm: (realm ?? "").utf8, password: password)
    }

    /// HA1 from the name and realm bytes exactly as a client sent them. The caller wipes the result.
    public static func ha1<U: Collection, R: Collection>(user: U, realm: R, password: UnsafeBufferPointer<UInt8>)
        -> [UInt8] where U.Element == UInt8, R.Element == UInt8
    {
        var md5 = Insecure.MD5()
        md5.update(data: Array(user) + [colon] + Array(realm) + [colon])
        md5.update(bufferPointer: UnsafeRawBufferPointer(password))
        return Array(md5.finalize())
    }

    /// The client's `response=` value and the server's `rspauth=` value (both lower-case hex) for
    /// qop `auth` (RFC 2831 §2.1.2.1). `ha1` is MD5(user:realm:password); nil if it is not 16 bytes.
    public static func digests(
        ha1: Secret, nonce: String, cnonce: String, authzid: String? = nil, nonceCount: String = "00000001",
        qop: String = "auth", digestURI: String
    ) -> (response: String, rspauth: String)? {
        guard
            let (response, rspauth) = digests(
                ha1: ha1, nonce: Array(nonce.utf8), cnonce: Array(cnonce.utf8), authzid: authzid.map { Array($0.utf8) },
                nonceCount: Array(nonceCount.utf8), qop: Array(qop.utf8), digestURI: Array(digestURI.utf8))
        else { return nil }
        return (String(decoding: response, as: UTF8.self), String(decoding: rspauth, as: UTF8.self))
    }

    /// The same on the bytes of the client's directives.
    package static func digests(
        ha1: Secret, nonce: [UInt8], cnonce: [UInt8], authzid: [UInt8]?, nonceCount: [UInt8], qop: [UInt8],
        digestURI: [UInt8]
    ) -> (response: [UInt8], rspauth: [UInt8])? {
        guard ha1.count == ha1Length else { return nil }
        // A1 = HA1 ":" nonce ":" cnonce [":" authzid]
        var md5 = Insecure.MD5()
        ha1.withBytes { md5.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        var rest = [colon] + nonce + [colon] + cnonce
        if let authzid { rest += [colon] + authzid }
        md5.update(data: rest)
        var a1Digest = Array(md5.finalize())
        var hexA1 = Hex.encode(a1Digest)
        a1Digest.wipe()
        defer { hexA1.wipe() }

        func kd(a2: [UInt8]) -> [UInt8] {
            let hexA2 = Hex.encode(Array(Insecure.MD5.hash(data: a2)))
            var text =
                hexA1 + [colon] + nonce + [colon] + nonceCount + [colon] + cnonce + [colon] + qop + [colon] + hexA2
            defer { text.wipe() }
            return Hex.encode(Array(Insecure.MD5.hash(data: text)))
        }
        let response = kd(a2: Array("AUTHENTICATE:".utf8) + digestURI)
        let rspauth = kd(a2: [colon] + digestURI)
        return (response, rspauth)
    }

    private static let colon = UInt8(ascii: ":")
}
