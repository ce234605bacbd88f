/// Comparisons whose running time does not depend on where the inputs differ.
public enum ConstantTime {
    /// True if both sequences hold the same bytes. The time depends only on the lengths.
    public static func equals<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        var diff: UInt8 = a.count == b.count ? 0 : 1
        // Always walk the longer input so a length mismatch costs the same as a content mismatch.
        var ia = a.makeIterator()
        var ib = b.makeIterator()
        for _ in 0..<Swift.max(a.count, b.count) {
            let x = ia.next() ?? 0
            let y = ib.next() ?? 0
            diff |= x ^ y
        }
        return diff == 0
    }
}
