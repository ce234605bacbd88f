import AuthCore
import SASL
import Testing

private typealias F = CRFixtures

@Suite struct ChallengeResponseDescriptorTests {
    struct Expected: Sendable, CustomTestStringConvertible {
        let descriptor: MechanismDescriptor
        let name: String
        let words: [String]
        let scheme: CredentialScheme
        var testDescription: String { name }
    }

    /// docs/PROTOCOL.md §5.4–5.6: names, MECH-line flags in Dovecot's order, and what the passdb must provide.
    static let expected: [Expected] = [
        Expected(descriptor: .cramMD5, name: "CRAM-MD5", words: ["dictionary", "active"], scheme: .cramMD5),
        Expected(
            descriptor: .digestMD5, name: "DIGEST-MD5", words: ["dictionary", "active", "mutual-auth"],
            scheme: .digestMD5),
        Expected(descriptor: .scramSHA1, name: "SCRAM-SHA-1", words: ["mutual-auth"], scheme: .scramSHA1),
        Expected(descriptor: .scramSHA256, name: "SCRAM-SHA-256", words: ["mutual-auth"], scheme: .scramSHA256),
    ]

    @Test(arguments: expected)
    func descriptor(row: Expected) {
        #expect(row.descriptor.name == row.name)
        #expect(row.descriptor.flags.words == row.words)
        #expect(row.descriptor.need == .credentials(row.scheme))
        #expect(row.descriptor.allowsNUL == false)
    }

    /// Each factory makes a fresh machine that starts the way docs/PROTOCOL.md §5.1 says.
    @Test(arguments: expected)
    func factoryMakesFreshMechanism(row: Expected) {
        let context = F.randomContext()
        var a = row.descriptor.make(context)
        var b = row.descriptor.make(context)
        let first = a.crStep(.start(initialResponse: nil))
        switch row.scheme {
        case .scramSHA1, .scramSHA256:
            #expect(first == .challenge(""))  // SCRAM: empty challenge, then client-first
        default:
            guard case .challenge(let text) = first else {
                Issue.record("expected the mechanism's own first challenge")
                return
            }
            #expect(!text.isEmpty)
        }
        // Independent state: b has not started yet, so a response is out of order for it.
        #expect(b.crStep(.response(F.bytes("x"))).isFailure)
    }

    @Test func listInDovecotOrder() {
        #expect(
            MechanismDescriptor.challengeResponseMechanisms.map(\.name) == [
                "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
            ])
    }

    @Test func limits() {
        #expect(ChallengeResponseLimits.maxClientMessageBytes == 8192)
        #expect(ChallengeResponseLimits.maxUserNameBytes == 255)
    }
}
