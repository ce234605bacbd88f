import Testing

@testable import AuthEngine

@Suite("username_chars: the ASCII mask and the scalar set agree")
struct UsernameCharsTests {
    let policy = UsernamePolicy(defaultRealm: "example.org", allowedCharacters: "abcdefghijklmnopqrstuvwxyz0123456789.-_@é")

    @Test("names of allowed characters pass, ASCII and not")
    func allowed() {
        #expect(policy.allAllowed("alice.smith-1_x@example.org"))
        #expect(policy.allAllowed("rené@example.org"))
        #expect(policy.allAllowed("0"))
    }

    @Test("one character outside username_chars refuses the name, wherever it is")
    func refused() {
        for name in ["Alice", "alice+tag", "a b", "alice\u{7F}", "\u{1}alice", "alice:x", "ren\u{E8}", "alice\u{0}", "~"] {
            #expect(!policy.allAllowed(name), "\(name.debugDescription)")
            if case .failure(.disallowedCharacter) = policy.normalize(name) {} else {
                Issue.record("\(name.debugDescription) was not refused for its characters")
            }
        }
    }

    @Test("every ASCII character: the mask decides as the set does")
    func everyASCII() {
        let set = policy.allowedCharacters!
        for value in UInt32(0)..<128 {
            let scalar = Unicode.Scalar(value)!
            #expect(policy.allAllowed(String(Character(scalar))) == set.contains(scalar), "U+\(String(value, radix: 16))")
        }
    }
}
