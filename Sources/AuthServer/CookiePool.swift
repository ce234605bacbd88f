import AuthCore
import Synchronization

/// Random bytes for the greeting's COOKIE, taken from the kernel's generator a page at a time instead of
/// one `getrandom(2)` per connection (a one-shot client such as Exim opens a connection for every AUTH).
/// Every byte is handed out once and then overwritten; the pool is shared by all event loops.
final class CookiePool: Sendable {
    private struct Pool {
        var bytes: [UInt8] = []
        var next = 0
    }
    private let state = Mutex(Pool())
    private let refill: Int

    init(refill: Int = 4096) {
        self.refill = refill
    }

    func bytes(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        if count > refill { return SecureRandom.bytes(count) }
        return state.withLock { pool in
            if pool.bytes.count - pool.next < count {
                pool.bytes = SecureRandom.bytes(refill)
                pool.next = 0
            }
            let range = pool.next..<(pool.next + count)
            let out = Array(pool.bytes[range])
            pool.bytes.replaceSubrange(range, with: repeatElement(0, count: count))
            pool.next += count
            return out
        }
    }
}
