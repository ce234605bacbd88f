// libFuzzer target: every SASL mechanism's state machine (Sources/SASL) fed arbitrary client messages,
// driven the way AuthEngine drives it: `.start`, then one client message per `.challenge`, `.verified`
// for `.verifyPlain`, and a credential for `.lookupCredentials`.
//
// Input format (bytes):
//   [0]    mechanism: 'P' PLAIN, 'L' LOGIN, 'C' CRAM-MD5, 'D' DIGEST-MD5, 'S' SCRAM-SHA-1,
//          'T' SCRAM-SHA-256, 'A' ANONYMOUS; any other byte picks one of MechanismRegistry.all by
//          value % count (so a mechanism added to the registry is fuzzed too).
//   [1]    options (ASCII digits work): bit 0: the first message is the initial response (else the
//          exchange starts without one); bits 1-2: the credential a lookup gets (0 cleartext
//          password, 1 the mechanism's own stored form, 2 a stored form of another mechanism,
//          3 a malformed stored form, bits 4-5 choose which); bit 3: DIGEST-MD5 realms
//          ["example.org", "q\"uo\\te"] instead of none.
//   [2...] client messages separated by 0x1E (ASCII RS), at most 8.
// A message that is exactly "@V", "@K", "@S" or "@0" is not sent as data: the mechanism gets
// `.verified`, `.credentials(cleartext)`, `.start(nil)` or `.start([])` instead, out of order.
// Inside a message, placeholders let mutations get past checks that compare against server state
// (invisible to libFuzzer's comparison tracing): "@N" becomes the current server nonce (DIGEST-MD5
// nonce, SCRAM full nonce), "@D" the right CRAM-MD5 hex digest, and a trailing ",p=@P" the right SCRAM
// proof for the message so far.
//
// The context is deterministic (fixed random bytes, fixed clock), so seeds can carry real digests.
// The user is `user`, the password `pencil`; Fuzz/make-seeds.py computes the same values.
//
// Besides "no trap, no unbounded allocation", the harness checks the contract of SASLMechanism and
// what the engine relies on: a name handed to the passdb is non-empty and at most 255 bytes, the
// credential scheme asked for is the descriptor's, a cleartext password is at most 255 bytes,
// challenges and final data stay small, and after success or failure every further input fails.

import AuthCore
import AuthCrypto
import CLibFuzzer
import SASL

#if canImport(Glibc)
    import Glibc
#endif

// MARK: deterministic surroundings

let fixedRandom: @Sendable (Int) -> [UInt8] = { n in (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 73 &+ 41) } }
let fixedNow: @Sendable () -> Int = { 1_795_557_314 }
let password = Secret("pencil")
let userName = "user"
let realmName = "example.org"

/// SCRAM verifiers with the salt and iteration count the mechanism uses for a cleartext passdb
/// (the first 16 fixed random bytes, 4096), so "@P" works with either credential kind.
let scramSalt = fixedRandom(SCRAM.saltLength)
let saltedSHA1 = SCRAM.saltedPassword(hash: .sha1, password: password, salt: scramSalt, iterations: 4096)!
let saltedSHA256 = SCRAM.saltedPassword(hash: .sha256, password: password, salt: scramSalt, iterations: 4096)!
// The keys are kept as plain class references: a global `Credential` (a multi-payload enum keeps its
// case tag in the spare bits of the pointer) hides them from LeakSanitizer, which then reports them.
let scramSHA1Keys = scramKeys(.sha1)
let scramSHA256Keys = scramKeys(.sha256)

func scramKeys(_ hash: SCRAMHash) -> (stored: Secret, server: Secret) {
    guard case .scram(_, _, _, let stored, let server) = try! SCRAM.makeCredential(hash: hash, password: password, salt: scramSalt)
    else { fatalError("makeCredential did not return a SCRAM credential") }
    return (stored, server)
}

/// The stored SCRAM verifier for `hash`, optionally spoiled.
func scramCredential(_ hash: SCRAMHash, iterations: Int = 4096, salt: [UInt8]? = nil, storedKey: Secret? = nil)
    -> Credential
{
    let keys = hash == .sha1 ? scramSHA1Keys : scramSHA256Keys
    return .scram(
        hash: hash, salt: salt ?? scramSalt, iterations: iterations, storedKey: storedKey ?? keys.stored,
        serverKey: keys.server)
}
let cramContext = CRAMMD5.context(password: password)
let digestHA1 = DigestMD5.ha1(user: userName, realm: realmName, password: password)

/// Every mechanism the registry knows, so a newly registered one is fuzzed without a harness change.
let descriptors: [MechanismDescriptor] = MechanismRegistry.all

func descriptor(for byte: UInt8) -> MechanismDescriptor {
    let name: String? =
        switch byte {
        case UInt8(ascii: "P"): "PLAIN"
        case UInt8(ascii: "L"): "LOGIN"
        case UInt8(ascii: "C"): "CRAM-MD5"
        case UInt8(ascii: "D"): "DIGEST-MD5"
        case UInt8(ascii: "S"): "SCRAM-SHA-1"
        case UInt8(ascii: "T"): "SCRAM-SHA-256"
        case UInt8(ascii: "A"): "ANONYMOUS"
        default: nil
        }
    if let name, let found = MechanismRegistry.descriptor(named: name) { return found }
    return descriptors[Int(byte) % descriptors.count]
}

func credential(for scheme: CredentialScheme, options: UInt8) -> Credential {
    let variant = (options >> 1) & 0x3
    let sub = (options >> 4) & 0x3
    switch variant {
    case 0:
        return .plaintext(password)
    case 1:
        switch scheme {
        case .plaintext: return .plaintext(password)
        case .cramMD5: return .cramMD5Context(cramContext)
        case .digestMD5: return .digestMD5HA1(digestHA1)
        case .scramSHA1: return scramCredential(.sha1)
        case .scramSHA256: return scramCredential(.sha256)
        }
    case 2:
        switch scheme {
        case .plaintext, .cramMD5: return .digestMD5HA1(digestHA1)
        case .digestMD5: return .cramMD5Context(cramContext)
        case .scramSHA1: return scramCredential(.sha256)
        case .scramSHA256: return scramCredential(.sha1)
        }
    default:
        switch scheme {
        case .plaintext: return .plaintext(Secret([]))
        case .cramMD5: return .cramMD5Context(Secret(Array(repeating: 7, count: Int(sub) * 11)))
        case .digestMD5: return .digestMD5HA1(Secret(Array(repeating: 7, count: Int(sub) * 7)))
        case .scramSHA1, .scramSHA256:
            let hash: SCRAMHash = scheme == .scramSHA1 ? .sha1 : .sha256
            switch sub {
            case 0: return scramCredential(hash, iterations: 100)
            case 1: return scramCredential(hash, iterations: Int.max)
            case 2: return scramCredential(hash, salt: [])
            default: return scramCredential(hash, storedKey: Secret([1, 2, 3]))
            }
        }
    }
}

// MARK: placeholders

func replacing(_ needle: String, with replacement: [UInt8], in message: [UInt8]) -> [UInt8] {
    let n = Array(needle.utf8)
    guard message.count >= n.count else { return message }
    var out: [UInt8] = []
    out.reserveCapacity(message.count)
    var i = 0
    while i < message.count {
        if i + n.count <= message.count, message[i..<(i + n.count)].elementsEqual(n) {
            out += replacement
            i += n.count
        } else {
            out.append(message[i])
            i += 1
        }
    }
    return out
}

/// The value of `key="…"` or `key=…` in a challenge (no escapes: our own challenges have none there).
func challengeValue(_ key: String, in challenge: [UInt8]) -> [UInt8]? {
    let pieces = challenge.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true)
    let prefix = Array((key + "=").utf8)
    for piece in pieces where piece.starts(with: prefix) {
        var value = Array(piece.dropFirst(prefix.count))
        if value.first == UInt8(ascii: "\""), value.last == UInt8(ascii: "\""), value.count >= 2 {
            value = Array(value.dropFirst().dropLast())
        }
        return value
    }
    return nil
}

struct Exchange {
    var mechanismName: String
    var clientFirst: [UInt8]?  // SCRAM client-first as sent
    var lastChallenge: [UInt8] = []
    var nonce: [UInt8]?

    mutating func noteChallenge(_ challenge: [UInt8]) {
        lastChallenge = challenge
        if mechanismName == "DIGEST-MD5", nonce == nil { nonce = challengeValue("nonce", in: challenge) }
        if mechanismName.hasPrefix("SCRAM"), challenge.starts(with: Array("r=".utf8)) {
            nonce = challengeValue("r", in: challenge)
        }
    }

    func substitute(_ message: [UInt8]) -> [UInt8] {
        guard message.contains(UInt8(ascii: "@")) else { return message }
        var out = message
        if let nonce { out = replacing("@N", with: nonce, in: out) }
        if mechanismName == "CRAM-MD5", !lastChallenge.isEmpty {
            let digest = CRAMMD5.digest(password: password, challenge: lastChallenge)
            out = replacing("@D", with: Hex.encode(digest), in: out)
        }
        let proofMarker = Array(",p=@P".utf8)
        if mechanismName.hasPrefix("SCRAM"), out.count >= proofMarker.count, out.suffix(proofMarker.count).elementsEqual(proofMarker),
            let first = clientFirst
        {
            let withoutProof = Array(out.dropLast(proofMarker.count))
            let bare = scramBare(first)
            let authMessage = bare + [UInt8(ascii: ",")] + lastChallenge + [UInt8(ascii: ",")] + withoutProof
            let sha1 = mechanismName == "SCRAM-SHA-1"
            let proof = SCRAM.clientProof(
                hash: sha1 ? .sha1 : .sha256, saltedPassword: sha1 ? saltedSHA1 : saltedSHA256, authMessage: authMessage)
            out = withoutProof + Array(",p=".utf8) + Base64.encode(proof)
        }
        return out
    }
}

/// client-first-message-bare: everything after the gs2 header (after the second comma).
func scramBare(_ clientFirst: [UInt8]) -> [UInt8] {
    var commas = 0
    for (i, b) in clientFirst.enumerated() where b == UInt8(ascii: ",") {
        commas += 1
        if commas == 2 { return Array(clientFirst[(i + 1)...]) }
    }
    return []
}

// MARK: the driver

enum Marker {
    case input(MechanismInput)
    case data([UInt8])
}

func classify(_ message: ArraySlice<UInt8>) -> Marker {
    switch Array(message) {
    case Array("@V".utf8): .input(.verified)
    case Array("@K".utf8): .input(.credentials(.plaintext(password)))
    case Array("@S".utf8): .input(.start(initialResponse: nil))
    case Array("@0".utf8): .input(.start(initialResponse: []))
    default: .data(Array(message))
    }
}

/// SASLGATE_FUZZ_TRACE=1: print each step (to check that seeds reach what they should; run the binary
/// with seed files as arguments). The password is the harness's fixed `pencil`, never a real one.
let tracing = getenv("SASLGATE_FUZZ_TRACE") != nil

func trace(_ text: @autoclosure () -> String) {
    guard tracing else { return }
    var line = "  " + text() + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func describe(_ step: MechanismStep) -> String {
    switch step {
    case .challenge(let c): "challenge \(String(decoding: c, as: UTF8.self))"
    case .verifyPlain(let id, _): "verifyPlain authcid=\(id.authcid) authzid=\(id.authzid ?? "-")"
    case .verifyToken(let id, _): "verifyToken authcid=\(id.authcid)"
    case .lookupCredentials(let id, let scheme):
        "lookupCredentials \(scheme) authcid=\(id.authcid) authzid=\(id.authzid ?? "-") realm=\(id.realm ?? "-")"
    case .success(let data): "SUCCESS \(data.map { String(decoding: $0, as: UTF8.self) } ?? "-")"
    case .failure(let f): "failure \(f)"
    }
}

func check(_ condition: Bool, _ what: @autoclosure () -> String) {
    if !condition { fatalError("contract violated: \(what())") }
}

func checkIdentity(_ identity: MechanismIdentity, _ mechanism: String) {
    let n = identity.authcid.utf8.count
    check(n > 0 && n <= 255, "\(mechanism) handed the passdb an authcid of \(n) bytes")
    if let z = identity.authzid { check(z.utf8.count <= 255, "\(mechanism) authzid of \(z.utf8.count) bytes") }
    if let r = identity.realm { check(r.utf8.count <= 255, "\(mechanism) realm of \(r.utf8.count) bytes") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMechanisms(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 2, let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let descriptor = descriptor(for: bytes[0])
    let options = bytes[1]
    var messages = bytes[2...].split(separator: 0x1E, maxSplits: 8, omittingEmptySubsequences: false)[...]
    if messages.count > 8 { messages = messages.prefix(8) }

    let realms = options & 0x08 != 0 ? [realmName, "q\"uo\\te"] : []
    let context = MechanismContext(hostname: "mx.example.org", realms: realms, randomBytes: fixedRandom, now: fixedNow)
    var mechanism = descriptor.make(context)
    var exchange = Exchange(mechanismName: descriptor.name)

    func nextInput(default answer: MechanismInput?) -> MechanismInput? {
        guard let message = messages.first else { return answer }
        if case .input(let input) = classify(message) {
            messages.removeFirst()
            return input
        }
        guard let answer else {
            messages.removeFirst()
            if case .data(let raw) = classify(message) { return .response(exchange.substitute(raw)) }
            return nil
        }
        return answer
    }

    // The first input.
    var input: MechanismInput
    if options & 0x01 != 0, let first = messages.first {
        messages.removeFirst()
        switch classify(first) {
        case .input(let i): input = i
        case .data(let raw):
            input = .start(initialResponse: raw)
            if descriptor.name.hasPrefix("SCRAM") { exchange.clientFirst = raw }
        }
    } else {
        input = .start(initialResponse: nil)
    }

    var terminal = false
    for _ in 0..<32 {
        if case .response(let raw) = input, descriptor.name.hasPrefix("SCRAM"), exchange.clientFirst == nil {
            exchange.clientFirst = raw
        }
        let step = mechanism.step(input)
        trace(describe(step))
        switch step {
        case .challenge(let challenge):
            check(challenge.count <= 8192, "\(descriptor.name) challenge of \(challenge.count) bytes")
            exchange.noteChallenge(challenge)
            guard let next = nextInput(default: nil) else { return 0 }  // client went away: fine
            input = next
        case .verifyPlain(let identity, let secret):
            check(descriptor.need == .verifyPlain, "\(descriptor.name) asked for a plaintext check")
            checkIdentity(identity, descriptor.name)
            check(secret.count <= 255, "\(descriptor.name) password of \(secret.count) bytes")
            input = nextInput(default: .verified)!
        case .verifyToken(let identity, let token):
            check(descriptor.need == .verifyToken, "\(descriptor.name) asked for a token check")
            checkIdentity(identity, descriptor.name)
            check(token.count <= 12 * 1024, "\(descriptor.name) token of \(token.count) bytes")
            input = nextInput(default: .verified)!
        case .lookupCredentials(let identity, let scheme):
            check(descriptor.need == .credentials(scheme), "\(descriptor.name) asked for a \(scheme) credential")
            checkIdentity(identity, descriptor.name)
            input = nextInput(default: .credentials(credential(for: scheme, options: options)))!
        case .success(let finalData):
            check((finalData?.count ?? 0) <= 1024, "\(descriptor.name) final data too long")
            terminal = true
        case .failure(let failure):
            if case .failed(let user, let reason) = failure {
                check(user.utf8.count <= 255, "\(descriptor.name) failure names a user of \(user.utf8.count) bytes")
                check(!reason.isEmpty, "\(descriptor.name) failure without a reason")
            }
            terminal = true
        }
        if terminal { break }
    }
    guard terminal else { return 0 }
    // Finished: whatever comes now must fail (the engine never does this, but the protocol says so).
    for late: MechanismInput in [.response([]), .verified, .start(initialResponse: nil)] {
        if case .failure = mechanism.step(late) { continue }
        fatalError("contract violated: \(descriptor.name) accepted input after finishing")
    }
    return 0
}

// MARK: entry point

/// SwiftPM links an executable with `main` renamed to `FuzzMechanisms_main`, so libFuzzer's own `main` cannot be
/// the entry point; this one hands the command line to libFuzzer's driver, which is what libFuzzer's
/// `main` does (all libFuzzer flags work as usual).
@main
enum FuzzMechanismsMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzMechanisms))
    }
}
