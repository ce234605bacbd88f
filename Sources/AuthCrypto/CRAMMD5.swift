public import AuthCore
internal import Crypto
internal import FoundationEssentials  // DataProtocol/ContiguousBytes conformances swift-crypto's API takes

/// CRAM-MD5 (RFC 2195): the client's digest and Dovecot's stored `{CRAM-MD5}` credential.
public enum CRAMMD5 {
    /// Bytes in a stored context (two MD5 chaining states).
    public static let contextLength = 32
    /// Bytes in a CRAM-MD5 digest (shown to the client as 32 lower-case hex digits).
    public static let digestLength = 16

    /// Dovecot's `{CRAM-MD5}` credential for `password` (what `doveadm pw -s CRAM-MD5` prints as hex):
    /// the HMAC-MD5 chaining states after absorbing the 64-byte `key XOR opad` and `key XOR ipad`
    /// blocks, each as four little-endian words a, b, c, d. The outer state comes first, as Dovecot's
    /// `hmac_md5_get_cram_context` writes it, so values move between Dovecot and saslgate unchanged.
    /// Password-equivalent: store it like a password.
    public static func context(password: Secret) -> Secret {
        var bytes = password.withBytes { context(password: $0) }
        defer { bytes.wipe() }
        return Secret(bytes)
    }

    /// The same from raw password bytes; the caller wipes the result.
    public static func context(password: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: 64)
        defer { key.wipe() }
        if password.count > 64 {
            var digest = MD5Block.digest(password)
            for i in 0..<16 { key[i] = digest[i] }
            digest.wipe()
        } else {
            for i in 0..<password.count { key[i] = password[i] }
        }
        var inner = [UInt8](repeating: 0, count: 64)
        var outer = [UInt8](repeating: 0, count: 64)
        defer {
            inner.wipe()
            outer.wipe()
        }
        for i in 0..<64 {
            inner[i] = key[i] ^ 0x36
            outer[i] = key[i] ^ 0x5C
        }
        var innerState = MD5Block.initialState
        var outerState = MD5Block.initialState
        inner.withUnsafeBufferPointer { MD5Block.compress(&innerState, block: $0) }
        outer.withUnsafeBufferPointer { MD5Block.compress(&outerState, block: $0) }
        var out: [UInt8] = []
        out.reserveCapacity(contextLength)
        for word in [
            outerState.0, outerState.1, outerState.2, outerState.3, innerState.0, innerState.1, innerState.2,
            innerState.3,
        ] {
            out.append(UInt8(truncatingIfNeeded: word))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 24))
        }
        return out
    }

    /// HMAC-MD5(key = password, text = challenge): the digest a client sends (as lower-case hex).
    public static func digest(password: Secret, challenge: [UInt8]) -> [UInt8] {
        let key = password.withBytes { SymmetricKey(data: UnsafeRawBufferPointer($0)) }
        return Array(HMAC<Insecure.MD5>.authenticationCode(for: challenge, using: key))
    }

    /// The same digest, finished from a stored context (see `context(password:)`); nil if the context
    /// does not have `contextLength` bytes.
    public static func digest(context: Secret, challenge: [UInt8]) -> [UInt8]? {
        guard context.count == contextLength else { return nil }
        return context.withBytes { digest(context: $0, challenge: challenge) }
    }

    /// HMAC-MD5 resumed from a context of `contextLength` bytes.
    static func digest(context: UnsafeBufferPointer<UInt8>, challenge: [UInt8]) -> [UInt8] {
        precondition(context.count == contextLength, "a CRAM-MD5 context is 32 bytes")
        func word(_ i: Int) -> UInt32 {
            UInt32(context[i]) | UInt32(context[i + 1]) << 8 | UInt32(context[i + 2]) << 16
                | UInt32(context[i + 3]) << 24
        }
        let outerState = (word(0), word(4), word(8), word(12))
        let innerState = (word(16), word(20), word(24), word(28))
        // Each state has absorbed exactly one 64-byte block.
        var innerDigest = MD5Block.finish(state: innerState, absorbed: 64, tail: challenge)
        defer { innerDigest.wipe() }
        return MD5Block.finish(state: outerState, absorbed: 64, tail: innerDigest)
    }

    /// The client's response for `challenge`: `user SP lower-case-hex(digest)` (for test clients).
    public static func response(user: String, password: Secret, challenge: [UInt8]) -> [UInt8] {
        Array(user.utf8) + [0x20] + Hex.encode(digest(password: password, challenge: challenge))
    }
}

/// swift-crypto does not expose MD5's chaining state, which the stored context is made of, so the one
/// compression function needed lives here.
/// A minimal MD5 (RFC 1321) with access to the chaining state.
enum MD5Block {
    typealias State = (UInt32, UInt32, UInt32, UInt32)

    static let initialState: State = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476)

    private static let shifts: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]

    private static let constants: [UInt32] = [
        0xD76A_A478, 0xE8C7_B756, 0x2420_70DB, 0xC1BD_CEEE,
        0xF57C_0FAF, 0x4787_C62A, 0xA830_4613, 0xFD46_9501,
        0x6980_98D8, 0x8B44_F7AF, 0xFFFF_5BB1, 0x895C_D7BE,
        0x6B90_1122, 0xFD98_7193, 0xA679_438E, 0x49B4_0821,
        0xF61E_2562, 0xC040_B340, 0x265E_5A51, 0xE9B6_C7AA,
        0xD62F_105D, 0x0244_1453, 0xD8A1_E681, 0xE7D3_FBC8,
        0x21E1_CDE6, 0xC337_07D6, 0xF4D5_0D87, 0x455A_14ED,
        0xA9E3_E905, 0xFCEF_A3F8, 0x676F_02D9, 0x8D2A_4C8A,
        0xFFFA_3942, 0x8771_F681, 0x6D9D_6122, 0xFDE5_380C,
        0xA4BE_EA44, 0x4BDE_CFA9, 0xF6BB_4B60, 0xBEBF_BC70,
        0x289B_7EC6, 0xEAA1_27FA, 0xD4EF_3085, 0x0488_1D05,
        0xD9D4_D039, 0xE6DB_99E5, 0x1FA2_7CF8, 0xC4AC_5665,
        0xF429_2244, 0x432A_FF97, 0xAB94_23A7, 0xFC93_A039,
        0x655B_59C3, 0x8F0C_CC92, 0xFFEF_F47D, 0x8584_5DD1,
        0x6FA8_7E4F, 0xFE2C_E6E0, 0xA301_4314, 0x4E08_11A1,
        0xF753_7E82, 0xBD3A_F235, 0x2AD7_D2BB, 0xEB86_D391,
    ]

    /// Absorbs one 64-byte block.
    static func compress(_ state: inout State, block: UnsafeBufferPointer<UInt8>) {
        precondition(block.count == 64)
        var m = [UInt32](repeating: 0, count: 16)
        for i in 0..<16 {
            m[i] =
                UInt32(block[4 * i]) | UInt32(block[4 * i + 1]) << 8 | UInt32(block[4 * i + 2]) << 16
                | UInt32(block[4 * i + 3]) << 24
        }
        var (a, b, c, d) = state
        for i in 0..<64 {
            var f: UInt32
            let g: Int
            switch i {
            case 0..<16:
                f = (b & c) | (~b & d)
                g = i
            case 16..<32:
                f = (d & b) | (~d & c)
                g = (5 * i + 1) % 16
            case 32..<48:
                f = b ^ c ^ d
                g = (3 * i + 5) % 16
            default:
                f = c ^ (b | ~d)
                g = (7 * i) % 16
            }
            f = f &+ a &+ constants[i] &+ m[g]
            a = d
            d = c
            c = b
            let s = shifts[i]
            b = b &+ ((f << s) | (f >> (32 - s)))
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d)
        for i in 0..<16 { m[i] = 0 }
    }

    /// Finishes a digest from `state`, which has absorbed `absorbed` bytes (a multiple of 64), over `tail`.
    static func finish<C: Collection>(state: State, absorbed: Int, tail: C) -> [UInt8] where C.Element == UInt8 {
        var state = state
        var data = Array(tail)
        defer { data.wipe() }
        let bitLength = UInt64(absorbed + data.count) &* 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for i in 0..<8 { data.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        data.withUnsafeBufferPointer { all in
            var offset = 0
            while offset < all.count {
                compress(&state, block: UnsafeBufferPointer(rebasing: all[offset..<offset + 64]))
                offset += 64
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for word in [state.0, state.1, state.2, state.3] {
            for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return out
    }

    static func digest<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        finish(state: initialState, absorbed: 0, tail: bytes)
    }
}
