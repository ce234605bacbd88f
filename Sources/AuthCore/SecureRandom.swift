#if canImport(Glibc)
import Glibc
#endif

/// Cryptographically secure random bytes from the kernel, in one call for the usual small sizes (a
/// cookie, a nonce, a salt) rather than one `getrandom(2)` per byte: glibc's `arc4random_buf`
/// (getrandom underneath).
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, count) }
        return out
    }
}
