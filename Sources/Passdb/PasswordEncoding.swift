import AuthCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Base64 and hex as stored in password fields. Kept internal and allocation-light: the table validates
// every field at load, so these work on raw buffers and never build Strings.

enum PasswordEncoding {

    /// Standard base64 with padding, no line breaks.
    static func base64Encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        Base64.encodeString(bytes)
    }

    /// Strict standard base64: padding required, no whitespace. Nil when invalid.
    static func base64Decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        Base64.decode(input)
    }

    static func base64Decode<C: Collection>(_ input: C) -> [UInt8]? where C.Element == UInt8 {
        let array = Array(input)
        return array.withUnsafeBufferPointer { base64Decode($0) }
    }

    /// Lower-case hex.
    static func hexEncode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        Hex.encodeString(bytes)
    }

    /// Hex in either case; nil when the length is odd or a digit is invalid.
    static func hexDecode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        Hex.decode(input)
    }

}

extension Array where Element == UInt8 {
    /// Zeroes the array's bytes in place (best effort: earlier copies made by the runtime are not reached).
    mutating func wipe() {
        withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicitZero(base, raw.count) }
        }
    }
}

