@testable import AuthEngine
import Testing

/// Delayed FAIL lines on a manual clock: released by the 0.5 s flush once due, a batch in one write and
/// in random order, the queue bounded.
@Suite struct FailureDelayQueueTests {
    static func line(_ id: Int) -> [UInt8] { Array("FAIL\t\(id)\n".utf8) }

    @Test func linesWaitOutTheirDelayThenLeaveInOneWrite() async {
        let io = FakeIO()
        let queue = FailureDelayQueue(io: io)
        for id in 1...3 { queue.add(Self.line(id), delay: 2, bound: 10) }
        #expect(queue.count == 3)
        #expect(io.activeTimers == 1)
        await io.advance(by: 1.5)
        #expect(io.writes.isEmpty)
        await io.advance(by: 0.5)  // the flush at t = 2.0 finds all three due
        #expect(io.writes.count == 1)
        #expect(Set(io.take()) == ["FAIL\t1", "FAIL\t2", "FAIL\t3"])
        #expect(queue.count == 0)
        #expect(io.activeTimers == 0)  // nothing left: no timer
    }

    /// A line is released by the first flush at or after its due time: the flushes come every 0.5 s.
    @Test func releaseFollowsTheHalfSecondTick() async {
        let io = FakeIO()
        let queue = FailureDelayQueue(io: io)
        await io.advance(by: 0.25)
        queue.add(Self.line(1), delay: 1, bound: 10)  // due at 1.25; flushes at 0.75, 1.25, ...
        await io.advance(by: 0.5)
        queue.add(Self.line(2), delay: 1, bound: 10)  // due at 1.75
        await io.advance(by: 0.25)
        #expect(io.take().isEmpty)
        await io.advance(by: 0.25)  // t = 1.25
        #expect(io.take() == ["FAIL\t1"])
        await io.advance(by: 0.25)
        #expect(io.take().isEmpty)
        await io.advance(by: 0.25)  // t = 1.75
        #expect(io.take() == ["FAIL\t2"])
        #expect(io.writes.count == 2)
    }

    @Test func differentDelaysLeaveInDifferentBatches() async {
        let io = FakeIO()
        let queue = FailureDelayQueue(io: io)
        queue.add(Self.line(1), delay: 4, bound: 10)
        queue.add(Self.line(2), delay: 2, bound: 10)
        await io.advance(by: 2)
        #expect(io.take() == ["FAIL\t2"])
        #expect(queue.count == 1)
        await io.advance(by: 2)
        #expect(io.take() == ["FAIL\t1"])
    }

    /// Past the bound the oldest line goes out at once, so the queue never holds more than `bound`.
    @Test func theQueueIsBounded() async {
        let io = FakeIO()
        let queue = FailureDelayQueue(io: io)
        for id in 1...5 { queue.add(Self.line(id), delay: 2, bound: 3) }
        #expect(io.take() == ["FAIL\t1", "FAIL\t2"])
        #expect(queue.count == 3)
        await io.advance(by: 2)
        #expect(Set(io.take()) == ["FAIL\t3", "FAIL\t4", "FAIL\t5"])
    }

    @Test func aBatchComesInRandomOrder() async {
        var orders = Set<[String]>()
        for _ in 0..<20 {
            let io = FakeIO()
            let queue = FailureDelayQueue(io: io)
            for id in 1...6 { queue.add(Self.line(id), delay: 1, bound: 10) }
            await io.advance(by: 1)
            orders.insert(io.take())
        }
        #expect(orders.allSatisfy { Set($0) == Set((1...6).map { "FAIL\t\($0)" }) })
        #expect(orders.count > 1)  // 20 identical orders out of 720 would be a fixed order
    }

    @Test func closingDropsTheWaitingLines() async {
        let io = FakeIO()
        let queue = FailureDelayQueue(io: io)
        queue.add(Self.line(1), delay: 2, bound: 10)
        queue.close()
        #expect(queue.count == 0)
        #expect(io.activeTimers == 0)
        queue.add(Self.line(2), delay: 2, bound: 10)
        await io.advance(by: 5)
        #expect(io.writes.isEmpty)
    }
}
