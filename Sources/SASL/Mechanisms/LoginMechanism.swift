public import AuthCore

/// LOGIN (draft-murchison-sasl-login): `Username:` then `Password:` prompts (docs/PROTOCOL.md §5.3).
/// A non-empty initial response is the user name; an empty or absent one gets the `Username:` prompt.
public struct LoginMechanism: SASLMechanism {
    public static let usernamePrompt = Array("Username:".utf8)
    public static let passwordPrompt = Array("Password:".utf8)
    /// Same bound as PLAIN's fields (RFC 4616 §2), applied to each LOGIN response.
    public static let maxFieldLength = 255

    private enum State { case initial, awaitingUser, awaitingPassword(String), verifying, done }
    private var state = State.initial

    public init() {}

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start(let initial)):
            if let initial, !initial.isEmpty { return takeUser(initial) }
            state = .awaitingUser
            return .challenge(Self.usernamePrompt)
        case (.awaitingUser, .response(let bytes)):
            return takeUser(bytes)
        case (.awaitingPassword(let user), .response(let bytes)):
            guard bytes.count <= Self.maxFieldLength else { return fail(user, "password too long") }
            state = .verifying
            return .verifyPlain(MechanismIdentity(authcid: user), password: Secret(bytes))
        case (.verifying, .verified):
            state = .done
            return .success(finalData: nil)
        default:
            state = .done
            return .failure(.malformed("unexpected input"))
        }
    }

    private mutating func takeUser(_ bytes: [UInt8]) -> MechanismStep {
        guard bytes.count <= Self.maxFieldLength, let user = String(validating: bytes, as: UTF8.self) else {
            state = .done
            return .failure(.malformed("LOGIN user name too long or not UTF-8"))
        }
        guard !user.isEmpty else { return fail("", "empty user name") }
        state = .awaitingPassword(user)
        return .challenge(Self.passwordPrompt)
    }

    private mutating func fail(_ user: String, _ reason: String) -> MechanismStep {
        state = .done
        return .failure(.failed(user: user, reason: reason))
    }
}

extension MechanismDescriptor {
    public static let login = MechanismDescriptor(
        name: "LOGIN", flags: [.plaintext], need: .verifyPlain, make: { _ in LoginMechanism() })
}
