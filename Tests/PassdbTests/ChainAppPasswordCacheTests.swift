import AuthCore
import Synchronization
import Testing

@testable import Passdb

/// A passdb whose one app password serves `smtp` only, counting its checks.
private final class ServicePassdb: PasswordDatabase {
    let name = "svc:test"
    let driver = "svc"
    let capabilities = PassdbCapabilities(verifyPlain: true)
    let calls = Mutex(0)
    var cacheGeneration: UInt64? { 7 }

    func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        await verifyPlainVerdict(request, password: password).result
    }

    func verifyPlainVerdict(_ request: PassdbRequest, password: Secret) async -> PassdbVerdict {
        calls.withLock { $0 += 1 }
        if password.constantTimeEquals(Array("main".utf8)) { return PassdbVerdict(.ok) }
        if password.constantTimeEquals(Array("app".utf8)), request.service == "smtp" { return PassdbVerdict(.ok, appPassword: "phone") }
        return PassdbVerdict(.passwordMismatch)
    }

    func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup { .userUnknown }
}

/// The auth cache with app passwords: entries are per service, app-password successes are not kept.
@Suite struct ChainAppPasswordCacheTests {
    @Test func cacheIsPerServiceAndSkipsAppPasswords() async {
        let db = ServicePassdb()
        var chain = PassdbChain([db])
        chain.cache = AuthCache(maxEntries: 100, ttl: 3600, negativeTTL: 3600)
        func login(_ password: String, _ service: String) async -> PassdbChain.Verdict {
            await chain.verify(PassdbRequest(user: "a@example.org", mechanism: "PLAIN", service: service), password: Secret(Array(password.utf8)))
        }
        #expect(await login("app", "imap").result == .passwordMismatch)
        // The negative answer for imap does not answer smtp.
        let smtp = await login("app", "smtp")
        #expect(smtp.result == .ok && smtp.appPassword == "phone")
        // App-password successes are asked again each time (services, expiry, last use).
        let before = db.calls.withLock { $0 }
        #expect(await login("app", "smtp").appPassword == "phone")
        #expect(db.calls.withLock { $0 } == before + 1)
        // The main password is cached as before.
        #expect(await login("main", "smtp").result == .ok)
        let afterMain = db.calls.withLock { $0 }
        #expect(await login("main", "smtp").result == .ok)
        #expect(db.calls.withLock { $0 } == afterMain)
    }
}
