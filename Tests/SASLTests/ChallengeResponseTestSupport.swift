import AuthCore
import Foundation
import SASL
import Testing

/// Shared fixtures for the CRAM-MD5, DIGEST-MD5 and SCRAM tests.
enum CRFixtures {
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func string(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    static func base64(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }

    static func unbase64(_ s: String) -> [UInt8] {
        guard let data = Data(base64Encoded: s) else { fatalError("bad base64 in test fixture: \(s)") }
        return Array(data)
    }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    static func unhex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let hi = it.next(), let lo = it.next() { out.append(UInt8(String([hi, lo]), radix: 16)!) }
        return out
    }

    /// A context whose random source hands out the given chunks in order (then zeros) and whose clock
    /// is fixed.
    static func context(
        hostname: String = "vm", realms: [String] = [], now: Int = 1_795_557_314, random chunks: [[UInt8]] = []
    ) -> MechanismContext {
        let source = ChunkedRandom(chunks)
        return MechanismContext(
            hostname: hostname, realms: realms, randomBytes: { source.next($0) }, now: { now })
    }

    /// A context with the system random source (for tests that only need uniqueness).
    static func randomContext(realms: [String] = []) -> MechanismContext {
        MechanismContext(hostname: "mail.example.org", realms: realms)
    }
}

/// Deterministic "random" bytes for test vectors.
final class ChunkedRandom: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [[UInt8]]

    init(_ chunks: [[UInt8]]) { self.chunks = chunks }

    func next(_ count: Int) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        let chunk = chunks.isEmpty ? [] : chunks.removeFirst()
        return Array((chunk + [UInt8](repeating: 0, count: count)).prefix(count))
    }
}

/// What a step was, in a form tests can compare (MechanismStep carries secrets and is not Equatable).
enum CRStep: Equatable, CustomStringConvertible {
    case challenge(String)
    case verifyPlain
    case lookup(MechanismIdentity, CredentialScheme)
    case success(String?)
    case malformed
    case failed(user: String)

    init(_ step: MechanismStep) {
        switch step {
        case .challenge(let b): self = .challenge(CRFixtures.string(b))
        case .verifyPlain: self = .verifyPlain
        case .verifyToken: self = .malformed  // no challenge-response mechanism asks for a token check
        case .lookupCredentials(let id, let scheme): self = .lookup(id, scheme)
        case .success(let data): self = .success(data.map(CRFixtures.string))
        case .failure(.malformed): self = .malformed
        case .failure(.failed(let user, _)): self = .failed(user: user)
        }
    }

    var isFailure: Bool {
        switch self {
        case .malformed, .failed: true
        default: false
        }
    }

    var description: String {
        switch self {
        case .challenge(let s): "challenge(\(s.debugDescription))"
        case .verifyPlain: "verifyPlain"
        case .lookup(let id, let scheme):
            "lookup(\(id.authcid), authzid: \(id.authzid ?? "-"), realm: \(id.realm ?? "-"), \(scheme))"
        case .success(let s): "success(\(s?.debugDescription ?? "nil"))"
        case .malformed: "malformed"
        case .failed(let user): "failed(user: \(user))"
        }
    }
}

extension SASLMechanism {
    /// `step` with the result made comparable.
    mutating func crStep(_ input: MechanismInput) -> CRStep { CRStep(step(input)) }
}

/// Inputs for out-of-order tables.
enum CRInput: String, CaseIterable, CustomStringConvertible {
    case startNone, startEmpty, response, emptyResponse, verified, plaintextCredential

    var input: MechanismInput {
        switch self {
        case .startNone: .start(initialResponse: nil)
        case .startEmpty: .start(initialResponse: [])
        case .response: .response(CRFixtures.bytes("x"))
        case .emptyResponse: .response([])
        case .verified: .verified
        case .plaintextCredential: .credentials(.plaintext(Secret("pw")))
        }
    }

    var description: String { rawValue }
}

/// One table row: a named client message and the step it must produce. Printed by name only.
struct CRRow: Sendable, CustomTestStringConvertible {
    let name: String
    let message: [UInt8]
    let expected: CRStep

    init(_ name: String, _ message: [UInt8], _ expected: CRStep) {
        self.name = name
        self.message = message
        self.expected = expected
    }

    init(_ name: String, _ message: String, _ expected: CRStep) {
        self.init(name, Array(message.utf8), expected)
    }

    var testDescription: String { name }
}

/// A named credential for tables.
struct CRCredentialRow: Sendable, CustomTestStringConvertible {
    let name: String
    let credential: Credential
    init(_ name: String, _ credential: Credential) {
        self.name = name
        self.credential = credential
    }
    var testDescription: String { name }
}
