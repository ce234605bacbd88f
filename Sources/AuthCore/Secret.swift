#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes that must never be logged, printed or kept longer than needed: passwords and password-equivalent
/// material. The storage is a private allocation that is zeroed when the last reference goes away, so a
/// password does not linger in freed heap memory. `description` is always `<hidden>`.
public final class Secret: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    // Immutable after init; @unchecked because the buffer pointer is not Sendable by itself.
    private let storage: UnsafeMutableBufferPointer<UInt8>

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        storage = .allocate(capacity: Swift.max(bytes.count, 1))
        _ = storage.initialize(from: bytes)
        count = bytes.count
    }

    public convenience init(_ string: String) {
        self.init(Array(string.utf8))
    }

    /// Number of bytes.
    public let count: Int

    public var isEmpty: Bool { count == 0 }

    /// Calls `body` with the secret bytes. Do not let them escape.
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as an array, for APIs that need one (hashing libraries). Prefer `withBytes`.
    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// True if the bytes contain a NUL (passwords may not).
    public var containsNUL: Bool { withBytes { $0.contains(0) } }

    /// Constant-time comparison with other bytes.
    public func constantTimeEquals<C: Collection>(_ other: C) -> Bool where C.Element == UInt8 {
        withBytes { ConstantTime.equals($0, other) }
    }

    public var description: String { "<hidden>" }
    public var debugDescription: String { "<hidden>" }

    deinit {
        if let base = storage.baseAddress {
            explicit_bzero(base, storage.count)
        }
        storage.deallocate()
    }
}
