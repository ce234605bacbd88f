/// ANONYMOUS (RFC 4505): any trace data (at most 255 UTF-8 characters, docs/PROTOCOL.md §5.7) succeeds as the
/// configured anonymous user. Never offered unless the configuration lists it and names the user:
/// behind Postfix's `permit_sasl_authenticated` an advertised ANONYMOUS is an open relay.
public struct AnonymousMechanism: SASLMechanism {
    /// RFC 4505 §2: trace information is at most 255 characters (UTF-8: at most 4 bytes each).
    public static let maxTraceCharacters = 255

    private enum State { case initial, awaitingTrace, done }
    private var state = State.initial

    public init() {}

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start(let initial)):
            guard let initial else {
                state = .awaitingTrace
                return .challenge([])
            }
            return finish(initial)
        case (.awaitingTrace, .response(let trace)):
            return finish(trace)
        default:
            state = .done
            return .failure(.malformed("unexpected input"))
        }
    }

    private mutating func finish(_ trace: [UInt8]) -> MechanismStep {
        state = .done
        guard trace.count <= Self.maxTraceCharacters * 4, let text = String(validating: trace, as: UTF8.self),
            text.unicodeScalars.count <= Self.maxTraceCharacters
        else {
            return .failure(.malformed("ANONYMOUS trace longer than 255 characters or not UTF-8"))
        }
        return .success(finalData: nil)
    }
}

extension MechanismDescriptor {
    public static let anonymous = MechanismDescriptor(
        name: "ANONYMOUS", flags: [.anonymous], need: .nothing, allowsNUL: true, make: { _ in AnonymousMechanism() })
}
