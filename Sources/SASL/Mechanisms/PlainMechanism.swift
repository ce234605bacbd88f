public import AuthCore

/// PLAIN (RFC 4616): one message `[authzid] NUL authcid NUL password`, exactly two NULs (docs/PROTOCOL.md §5.2).
/// Without an initial response the server first sends an empty challenge.
public struct PlainMechanism: SASLMechanism {
    /// RFC 4616 §2: authzid, authcid and passwd are each at most 255 octets.
    public static let maxFieldLength = 255

    private enum State { case initial, awaitingMessage, verifying(user: String), done }
    private var state = State.initial

    public init() {}

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start(let initial)):
            guard let initial else {
                state = .awaitingMessage
                return .challenge([])
            }
            return parse(initial)
        case (.awaitingMessage, .response(let message)):
            return parse(message)
        case (.verifying, .verified):
            state = .done
            return .success(finalData: nil)
        default:
            state = .done
            return .failure(.malformed("unexpected input"))
        }
    }

    private mutating func parse(_ message: [UInt8]) -> MechanismStep {
        // authzid NUL authcid NUL password, exactly two NULs (found in place: no array of parts).
        guard let first = message.firstIndex(of: 0),
            let second = message[(first + 1)...].firstIndex(of: 0),
            !message[(second + 1)...].contains(0)
        else {
            state = .done
            return .failure(.malformed("PLAIN message must have exactly two NUL separators"))
        }
        let authzid = message[..<first], authcid = message[(first + 1)..<second], password = message[(second + 1)...]
        guard authzid.count <= Self.maxFieldLength, authcid.count <= Self.maxFieldLength,
            password.count <= Self.maxFieldLength
        else {
            state = .done
            return .failure(.malformed("PLAIN field longer than 255 bytes"))
        }
        guard let user = String(validating: authcid, as: UTF8.self),
            let zid = String(validating: authzid, as: UTF8.self)
        else {
            state = .done
            return .failure(.malformed("PLAIN identity is not UTF-8"))
        }
        guard !user.isEmpty else {
            state = .done
            return .failure(.malformed("empty authentication identity"))
        }
        state = .verifying(user: user)
        return .verifyPlain(
            MechanismIdentity(authcid: user, authzid: zid.isEmpty ? nil : zid), password: Secret(password))
    }
}

extension MechanismDescriptor {
    public static let plain = MechanismDescriptor(
        name: "PLAIN", flags: [.plaintext], need: .verifyPlain, allowsNUL: true, make: { _ in PlainMechanism() })
}
