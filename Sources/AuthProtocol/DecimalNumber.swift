/// Unsigned decimal numbers as the protocol writes them (ids, pids, versions), read and written
/// without a String in between.
enum DecimalNumber {
    /// Decimal digits only, at most UInt32.max; leading zeros accepted (`007` is 7).
    static func uint32<C: Collection>(_ bytes: C) -> UInt32? where C.Element == UInt8 {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(b - UInt8(ascii: "0"))
            if value > UInt64(UInt32.max) { return nil }
        }
        return UInt32(value)
    }

    static func append(_ value: UInt32, to out: inout [UInt8]) {
        var divisor: UInt32 = 1
        while divisor <= value / 10 { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }
}
