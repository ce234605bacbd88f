import Testing

@testable import AuthServer

@Suite("CookiePool: greeting cookies from a pooled kernel read")
struct CookiePoolTests {
    @Test("every cookie is new, across refills, and has the length asked for")
    func distinctAcrossRefills() {
        let pool = CookiePool(refill: 64)  // a refill every 4 cookies
        var seen = Set<[UInt8]>()
        for _ in 0..<1000 {
            let cookie = pool.bytes(16)
            #expect(cookie.count == 16)
            #expect(seen.insert(cookie).inserted, "a cookie was handed out twice")
        }
        // 16 random bytes all zero would mean the pool handed out bytes it had already wiped.
        #expect(!seen.contains([UInt8](repeating: 0, count: 16)))
    }

    @Test("requests larger than the pool and empty requests")
    func oddSizes() {
        let pool = CookiePool(refill: 32)
        #expect(pool.bytes(0).isEmpty)
        let big = pool.bytes(100)
        #expect(big.count == 100)
        #expect(Set(big).count > 10)
        #expect(pool.bytes(20).count == 20)
        #expect(pool.bytes(20).count == 20)  // not enough left: refilled
    }
}
