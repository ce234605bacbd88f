import AuthProtocol
@testable import AuthEngine
import SASL
import Testing

/// The per-connection request table on a manual clock: ids, the pending bound with eviction of the
/// oldest request waiting for the client, and the timeout sweep.
@Suite struct RequestTableTests {
    static let login = MechanismRegistry.descriptor(named: "LOGIN")!

    func request(_ id: UInt32, at io: FakeIO, state: AuthRequest.State = .awaitingResponse) -> AuthRequest {
        let r = AuthRequest(
            command: AuthCommand(id: id, mechanism: "LOGIN", service: "smtp"), descriptor: Self.login,
            mechanism: Self.login.make(MechanismContext(hostname: "h")), started: io.now())
        r.state = state
        return r
    }

    @Test func idsLookupAndRemoval() {
        let io = FakeIO()
        let table = RequestTable(io: io, timeout: 150) { _ in }
        let first = request(7, at: io)
        table.insert(first)
        #expect(table[7] === first)
        #expect(table[8] == nil)
        #expect(table.holds(first))
        #expect(table.remove(id: 7) === first)
        #expect(table.remove(id: 7) == nil)
        // The id is free again; the old request is no longer the one it names.
        let second = request(7, at: io)
        table.insert(second)
        #expect(!table.holds(first))
        #expect(!table.remove(first))
        #expect(table.remove(second))
        #expect(table.count == 0)
    }

    @Test func onlyBusyRequestsAreOwedReplies() {
        let io = FakeIO()
        let table = RequestTable(io: io, timeout: 150) { _ in }
        table.insert(request(1, at: io, state: .busy))
        table.insert(request(2, at: io, state: .awaitingResponse))
        table.insert(request(3, at: io, state: .awaitingFinalAck))
        table.insert(request(4, at: io, state: .busy))
        #expect(table.count == 4)
        #expect(table.busyCount == 2)
    }

    @Test func belowTheBoundThereIsRoom() {
        let io = FakeIO()
        let table = RequestTable(io: io, timeout: 150) { _ in }
        table.insert(request(1, at: io))
        guard case .free = table.makeRoom(limit: 2) else {
            Issue.record("expected room")
            return
        }
        #expect(table.count == 1)
    }

    /// At the bound the oldest request waiting for the client goes, even when a busy one is older.
    @Test func atTheBoundTheOldestWaitingRequestIsEvicted() async {
        let io = FakeIO()
        let table = RequestTable(io: io, timeout: 150) { _ in }
        table.insert(request(1, at: io, state: .busy))
        await io.advance(by: 1)
        table.insert(request(2, at: io, state: .awaitingResponse))
        await io.advance(by: 1)
        table.insert(request(3, at: io, state: .awaitingFinalAck))
        guard case .evicted(let victim) = table.makeRoom(limit: 3) else {
            Issue.record("expected an eviction")
            return
        }
        #expect(victim.id == 2)
        #expect(table[2] == nil)
        #expect(table.count == 2)
        guard case .evicted(let next) = table.makeRoom(limit: 2) else {
            Issue.record("expected an eviction")
            return
        }
        #expect(next.id == 3)
        #expect(table[1] != nil)
    }

    @Test func whenEveryRequestIsBusyTheTableIsFull() {
        let io = FakeIO()
        let table = RequestTable(io: io, timeout: 150) { _ in }
        table.insert(request(1, at: io, state: .busy))
        table.insert(request(2, at: io, state: .busy))
        guard case .full = table.makeRoom(limit: 2) else {
            Issue.record("expected full")
            return
        }
        #expect(table.count == 2)
    }

    /// Dovecot drops a request 150 s after its AUTH, silently; the sweep runs every 15 s while requests
    /// are pending, so a request goes between 150 and 165 s.
    @Test func theSweepDropsRequestsOlderThanTheTimeout() async {
        let io = FakeIO()
        var expired: [UInt32] = []
        let table = RequestTable(io: io, timeout: 150) { expired.append($0.id) }
        table.insert(request(1, at: io))
        #expect(io.activeTimers == 1)
        await io.advance(by: 100)
        table.insert(request(2, at: io))
        #expect(io.activeTimers == 1)  // one sweep timer per table
        await io.advance(by: 49)
        #expect(expired.isEmpty)
        await io.advance(by: 16)  // t = 165: request 1 is past 150 s, request 2 is 65 s old
        #expect(expired == [1])
        #expect(table[2] != nil)
        await io.advance(by: 100)  // t = 265: request 2 is 165 s old
        #expect(expired == [1, 2])
        #expect(table.count == 0)
        #expect(io.activeTimers == 0)  // an empty table does not sweep
    }

    @Test func aShortTimeoutSweepsAtLeastEverySecond() async {
        let io = FakeIO()
        var expired: [UInt32] = []
        let table = RequestTable(io: io, timeout: 2) { expired.append($0.id) }
        table.insert(request(1, at: io))
        await io.advance(by: 1.5)
        #expect(expired.isEmpty)
        await io.advance(by: 0.5)  // the sweep at t = 2 finds it exactly 2 s old
        #expect(expired == [1])
    }

    /// A reload's new `request_timeout` applies from the next sweep on.
    @Test func theSweepUsesTheTimeoutInForce() async {
        let io = FakeIO()
        var expired: [UInt32] = []
        let table = RequestTable(io: io, timeout: 150) { expired.append($0.id) }
        table.insert(request(1, at: io))
        table.timeout = 10
        await io.advance(by: 15)
        #expect(expired == [1])
    }

    @Test func closingForgetsEverythingAndStopsTheSweep() async {
        let io = FakeIO()
        var expired: [UInt32] = []
        let table = RequestTable(io: io, timeout: 150) { expired.append($0.id) }
        table.insert(request(1, at: io))
        table.insert(request(2, at: io))
        #expect(table.close() == 2)
        #expect(table.count == 0)
        #expect(io.activeTimers == 0)
        table.insert(request(3, at: io))  // a late insert arms nothing
        #expect(io.activeTimers == 0)
        await io.advance(by: 500)
        #expect(expired.isEmpty)
    }
}
