/// The MD5 compression function (RFC 1321 §3.4) with an exposed chaining state.
///
/// swift-crypto's `Insecure.MD5` cannot export or resume its internal state, but Dovecot's stored
/// `{CRAM-MD5}` credential *is* such a state: the HMAC-MD5 inner and outer MD5 states after the
/// 64-byte `key XOR ipad` / `key XOR opad` blocks (`hmac_md5_get_cram_context`). Finishing an HMAC from
/// that credential, and creating one, needs exactly this small piece. It is used for nothing else:
/// ordinary MD5 and HMAC-MD5 go through swift-crypto.
struct MD5ChainingState: Equatable {
    var a: UInt32
    var b: UInt32
    var c: UInt32
    var d: UInt32

    /// RFC 1321 §3.3 initial values.
    static let initial = MD5ChainingState(a: 0x6745_2301, b: 0xefcd_ab89, c: 0x98ba_dcfe, d: 0x1032_5476)

    /// The four words little-endian, a first (Dovecot's `CDPUT` order inside one state).
    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for word in [a, b, c, d] {
            out.append(UInt8(truncatingIfNeeded: word))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 24))
        }
        return out
    }

    /// Reads 16 bytes written by `bytes`.
    init<C: Collection>(littleEndian bytes: C) where C.Element == UInt8 {
        precondition(bytes.count == 16)
        var words: [UInt32] = []
        var it = bytes.makeIterator()
        for _ in 0..<4 {
            var w: UInt32 = 0
            for shift in stride(from: 0, to: 32, by: 8) { w |= UInt32(it.next()!) << UInt32(shift) }
            words.append(w)
        }
        self.init(a: words[0], b: words[1], c: words[2], d: words[3])
    }

    init(a: UInt32, b: UInt32, c: UInt32, d: UInt32) {
        self.a = a
        self.b = b
        self.c = c
        self.d = d
    }
}

enum MD5Compression {
    private static let shifts: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]

    /// floor(|sin(i + 1)| * 2^32), RFC 1321 §3.4.
    private static let constants: [UInt32] = [
        0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee, 0xf57c_0faf, 0x4787_c62a, 0xa830_4613, 0xfd46_9501,
        0x6980_98d8, 0x8b44_f7af, 0xffff_5bb1, 0x895c_d7be, 0x6b90_1122, 0xfd98_7193, 0xa679_438e, 0x49b4_0821,
        0xf61e_2562, 0xc040_b340, 0x265e_5a51, 0xe9b6_c7aa, 0xd62f_105d, 0x0244_1453, 0xd8a1_e681, 0xe7d3_fbc8,
        0x21e1_cde6, 0xc337_07d6, 0xf4d5_0d87, 0x455a_14ed, 0xa9e3_e905, 0xfcef_a3f8, 0x676f_02d9, 0x8d2a_4c8a,
        0xfffa_3942, 0x8771_f681, 0x6d9d_6122, 0xfde5_380c, 0xa4be_ea44, 0x4bde_cfa9, 0xf6bb_4b60, 0xbebf_bc70,
        0x289b_7ec6, 0xeaa1_27fa, 0xd4ef_3085, 0x0488_1d05, 0xd9d4_d039, 0xe6db_99e5, 0x1fa2_7cf8, 0xc4ac_5665,
        0xf429_2244, 0x432a_ff97, 0xab94_23a7, 0xfc93_a039, 0x655b_59c3, 0x8f0c_cc92, 0xffef_f47d, 0x8584_5dd1,
        0x6fa8_7e4f, 0xfe2c_e6e0, 0xa301_4314, 0x4e08_11a1, 0xf753_7e82, 0xbd3a_f235, 0x2ad7_d2bb, 0xeb86_d391,
    ]

    /// Absorbs one 64-byte block.
    static func compress(_ state: inout MD5ChainingState, block: ArraySlice<UInt8>) {
        precondition(block.count == 64)
        var m = [UInt32](repeating: 0, count: 16)
        var i = block.startIndex
        for w in 0..<16 {
            m[w] =
                UInt32(block[i]) | UInt32(block[i + 1]) << 8 | UInt32(block[i + 2]) << 16
                | UInt32(block[i + 3]) << 24
            i += 4
        }
        var a = state.a
        var b = state.b
        var c = state.c
        var d = state.d
        for j in 0..<64 {
            var f: UInt32
            let g: Int
            switch j {
            case 0..<16:
                f = (b & c) | (~b & d)
                g = j
            case 16..<32:
                f = (d & b) | (~d & c)
                g = (5 &* j &+ 1) % 16
            case 32..<48:
                f = b ^ c ^ d
                g = (3 &* j &+ 5) % 16
            default:
                f = c ^ (b | ~d)
                g = (7 &* j) % 16
            }
            f = f &+ a &+ constants[j] &+ m[g]
            a = d
            d = c
            c = b
            let s = shifts[j]
            b = b &+ ((f << s) | (f >> (32 - s)))
        }
        state.a = state.a &+ a
        state.b = state.b &+ b
        state.c = state.c &+ c
        state.d = state.d &+ d
        // The message words may hold key material (ipad/opad blocks).
        m.withUnsafeMutableBytes { raw in
            for k in raw.indices { raw[k] = 0 }
        }
    }

    /// Continues an MD5 computation from `state`, which has already absorbed `processedBytes` bytes
    /// (a multiple of 64), with `message`, and returns the 16-byte digest.
    static func finish(from state: MD5ChainingState, processedBytes: Int, message: [UInt8]) -> [UInt8] {
        precondition(processedBytes % 64 == 0)
        var st = state
        var data = message
        let bitLength = UInt64(processedBytes + message.count) &* 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 0, to: 64, by: 8) {
            data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        var offset = 0
        while offset < data.count {
            compress(&st, block: data[offset..<(offset + 64)])
            offset += 64
        }
        ChallengeResponseSupport.wipe(&data)
        return st.bytes
    }

    /// Plain MD5 of `message` (used only to check this implementation against swift-crypto).
    static func digest(_ message: [UInt8]) -> [UInt8] {
        finish(from: .initial, processedBytes: 0, message: message)
    }
}
