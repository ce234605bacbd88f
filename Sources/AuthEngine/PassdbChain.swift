public import AuthCore
public import Passdb

/// Asks the configured passdbs in order, like Dovecot's defaults: an unknown user goes on to the next
/// passdb; any other answer (right or wrong password, disabled, internal failure) is final.
public struct PassdbChain: Sendable {
    public let passdbs: [any PasswordDatabase]

    public init(_ passdbs: [any PasswordDatabase]) {
        self.passdbs = passdbs
    }

    /// The verdict and the passdb that gave it (nil when none knew the user).
    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> (PassdbResult, String?) {
        for db in passdbs where db.capabilities.verifyPlain {
            let result = await db.verifyPlain(request, password: password)
            if result == .userUnknown { continue }
            return (result, db.name)
        }
        return (.userUnknown, nil)
    }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> (CredentialLookup, String?) {
        var fallback: (CredentialLookup, String?) = (.userUnknown, nil)
        for db in passdbs where db.capabilities.credentials.contains(scheme) {
            let result = await db.lookupCredentials(request, scheme: scheme)
            switch result {
            case .userUnknown: continue
            case .schemeNotAvailable:
                // The user is here but without a secret for this mechanism; another passdb may have one.
                fallback = (result, db.name)
                continue
            default: return (result, db.name)
            }
        }
        return fallback
    }

    /// True if at least one passdb can serve a mechanism with this need.
    public func canServe(_ need: SASLNeedKey) -> Bool {
        switch need {
        case .nothing: true
        case .verifyPlain: passdbs.contains { $0.capabilities.verifyPlain }
        case .credentials(let scheme): passdbs.contains { $0.capabilities.credentials.contains(scheme) }
        }
    }
}

/// `PassdbNeed` mirrored here so `Passdb` users need not import `SASL`.
public enum SASLNeedKey: Sendable, Equatable {
    case nothing, verifyPlain, credentials(CredentialScheme)
}
