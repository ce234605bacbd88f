public import AuthCore
import AuthCrypto
import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A stored-password scheme as Dovecot names it in `{SCHEME}value`. Names are case-insensitive; a value
/// without a `{SCHEME}` prefix is `CRYPT` (Dovecot's passwd-file default).
public enum PasswordScheme: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Clear text, compared in constant time. Can give every credential kind.
    case plain = "PLAIN"
    /// Any crypt(3) hash libcrypt knows (`$y$` yescrypt, `$6$`, `$5$`, `$2b$`, ...). New hashes: yescrypt.
    case crypt = "CRYPT"
    case sha512Crypt = "SHA512-CRYPT"
    case sha256Crypt = "SHA256-CRYPT"
    case blfCrypt = "BLF-CRYPT"
    /// `$1$`: verified for old tables, never written.
    case md5Crypt = "MD5-CRYPT"
    /// base64(SHA-256(password || salt) || salt).
    case ssha256 = "SSHA256"
    /// base64(SHA-512(password || salt) || salt).
    case ssha512 = "SSHA512"
    /// base64(SHA-1(password || salt) || salt): OpenLDAP's slappasswd default. Verified, never written.
    case ssha = "SSHA"
    /// base64(SHA-1(password)), unsalted (OpenLDAP `{SHA}`). Verified for old entries, never written.
    case sha = "SHA"
    /// 64 hex digits: HMAC-MD5 outer and inner states (see `CRAMMD5.context`).
    case cramMD5 = "CRAM-MD5"
    /// 32 hex digits: MD5(user ":" realm ":" password).
    case digestMD5 = "DIGEST-MD5"
    /// `iterations,salt,storedkey,serverkey` (base64 fields).
    case scramSHA1 = "SCRAM-SHA-1"
    case scramSHA256 = "SCRAM-SHA-256"

    public var description: String { rawValue }

    /// The scheme for new passwords when none is asked for: yescrypt, written as `{CRYPT}$y$...`.
    public static let defaultForNewPasswords: PasswordScheme = .crypt

    /// bcrypt cost for new `{BLF-CRYPT}` hashes (2^10 rounds, ~45 ms here).
    public static let bcryptCost: UInt = 10

    /// Looks a scheme up by name, case-insensitively; Dovecot's aliases `CLEAR` and `CLEARTEXT` mean PLAIN.
    public init?(name: String) {
        let upper = name.uppercased()
        switch upper {
        case "CLEAR", "CLEARTEXT": self = .plain
        default:
            guard let s = PasswordScheme(rawValue: upper) else { return nil }
            self = s
        }
    }

    /// Verified by computing crypt(3).
    public var isCryptFamily: Bool {
        switch self {
        case .crypt, .sha512Crypt, .sha256Crypt, .blfCrypt, .md5Crypt: true
        default: false
        }
    }

    /// Verification costs real CPU time and must run on a `BlockingExecutor`, not the caller's thread.
    public var isExpensive: Bool {
        switch self {
        case .plain, .cramMD5, .digestMD5: false
        default: true
        }
    }

    /// The challenge-response credential an entry of this scheme holds as such (`{CRAM-MD5}` holds the
    /// CRAM-MD5 context, ...): Dovecot names these schemes after the mechanisms. nil for the others.
    public var storedCredential: CredentialScheme? {
        self == .plain ? nil : CredentialScheme(rawValue: rawValue)
    }

    /// Credential kinds an entry of this scheme can give to challenge-response mechanisms. A clear-text
    /// entry can give all of them: `StoredPassword.credential(_:user:)` converts on the fly, as Dovecot does.
    public var credentialSchemes: Set<CredentialScheme> {
        if self == .plain { return Set(CredentialScheme.allCases) }
        return storedCredential.map { [$0] } ?? []
    }

    /// Schemes `hash(_:user:)` can write.
    public static let hashable: [PasswordScheme] = [
        .crypt, .sha512Crypt, .sha256Crypt, .blfCrypt, .ssha512, .ssha256, .scramSHA256, .scramSHA1, .cramMD5,
        .digestMD5, .plain,
    ]

    /// Names of every scheme, for error messages.
    static let supportedList = allCases.map(\.rawValue).joined(separator: ", ")

    // MARK: fast matching on raw bytes (table load)

    private static let upperNames: [(PasswordScheme, [UInt8])] =
        allCases.map { ($0, Array($0.rawValue.utf8)) } + [
            (.plain, Array("CLEAR".utf8)), (.plain, Array("CLEARTEXT".utf8)),
        ]

    /// Matches a scheme name case-insensitively without building a String.
    static func match(_ name: UnsafeBufferPointer<UInt8>) -> PasswordScheme? {
        outer: for (scheme, bytes) in upperNames where bytes.count == name.count {
            for i in 0..<bytes.count {
                var c = name[i]
                if c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") { c -= 32 }
                if c != bytes[i] { continue outer }
            }
            return scheme
        }
        return nil
    }
}

/// Why a stored password field or a new password cannot be used. Descriptions never contain the
/// password, the hash or anything but the scheme name.
public enum PasswordSchemeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `{NAME}` is not a scheme we know; `name` is nil when it does not look like a scheme name (so it is
    /// not shown: it might be a password).
    case unknownScheme(name: String?)
    /// The field starts with `{` and has no `}`.
    case unterminatedScheme
    /// Nothing after `{SCHEME}` (or an empty field).
    case emptyValue(PasswordScheme)
    /// The value does not have the scheme's format.
    case malformedValue(PasswordScheme, expected: String)
    /// This scheme can be verified but is never written for new passwords.
    case verifyOnly(PasswordScheme)
    /// The new password cannot be stored this way (contains NUL, newline, ':' for PLAIN, too long, empty).
    case passwordNotStorable(String)
    /// The scheme needs the user name (DIGEST-MD5 hashes `user:realm:password`).
    case needsUserName(PasswordScheme)
    /// libcrypt could not hash (unknown prefix, no randomness).
    case hashingFailed(PasswordScheme, String)

    public var description: String {
        switch self {
        case .unknownScheme(let name?):
            "unknown password scheme {\(name)}; use one of \(PasswordScheme.supportedList), e.g. make a new hash with `saslgate pw`"
        case .unknownScheme(nil):
            "the password field starts with '{...}' but that is not a password scheme (not shown); use one of "
                + "\(PasswordScheme.supportedList), or put {PLAIN} before a clear-text password"
        case .unterminatedScheme:
            "the password field starts with '{' but has no closing '}'; write {SCHEME}value, e.g. {PLAIN}{secret"
        case .emptyValue(let s):
            "empty password after {\(s)}; set one with `saslgate user passwd USER`"
        case .malformedValue(let s, let expected):
            "the {\(s)} value is malformed (\(expected)); make a new one with `saslgate pw --scheme \(s)`"
        case .verifyOnly(let s):
            "{\(s)} is only accepted for old entries; choose one of "
                + PasswordScheme.hashable.map(\.rawValue).joined(separator: ", ")
        case .passwordNotStorable(let why):
            "the password cannot be stored: \(why)"
        case .needsUserName(let s):
            "{\(s)} hashes the user name with the password; give the user name"
        case .hashingFailed(let s, let why):
            "could not hash with {\(s)}: \(why)"
        }
    }
}

/// The outcome of checking a plaintext password against a stored one.
public enum PasswordVerification: Sendable, Equatable {
    case match
    case mismatch
    /// The stored value cannot be checked here (libcrypt does not know the hash, a NUL in the password
    /// for crypt). The reason is for the log.
    case unverifiable(String)
}

/// What a field check at load found besides hard errors.
enum StoredValueCheck: Equatable {
    case ok
    /// Loaded, but worth a log line (legacy or unknown crypt method).
    case warning(String)
    case error(PasswordSchemeError)
}

/// One stored password: the scheme and the bytes after `{SCHEME}`, kept in a wiping `Secret`.
public struct StoredPassword: Sendable, CustomStringConvertible {
    public let scheme: PasswordScheme
    /// The value after the `{SCHEME}` prefix. Password-equivalent: never log it.
    public let value: Secret

    /// Parses a whole field such as `{SHA512-CRYPT}$6$...` and checks the value's format.
    public init(field: String) throws(PasswordSchemeError) {
        let bytes = Array(field.utf8)
        let parsed = bytes.withUnsafeBufferPointer { buf -> Result<StoredPassword, PasswordSchemeError> in
            switch StoredPassword.splitField(buf) {
            case .failure(let e): return .failure(e)
            case .success(let (scheme, range)):
                let value = UnsafeBufferPointer(rebasing: buf[range])
                if case .error(let e) = StoredPassword.check(scheme: scheme, value: value) { return .failure(e) }
                return .success(StoredPassword(scheme: scheme, value: value))
            }
        }
        self = try parsed.get()
    }

    init(scheme: PasswordScheme, value: UnsafeBufferPointer<UInt8>) {
        self.scheme = scheme
        self.value = Secret(value)
    }

    public var description: String { "{\(scheme)}<hidden>" }

    public var credentialSchemes: Set<CredentialScheme> { scheme.credentialSchemes }

    // MARK: parsing

    /// Splits `{SCHEME}value`; no prefix means CRYPT. Returns the value's range within `field`.
    static func splitField(_ field: UnsafeBufferPointer<UInt8>) -> Result<
        (PasswordScheme, Range<Int>), PasswordSchemeError
    > {
        guard let first = field.first, first == UInt8(ascii: "{") else {
            return .success((.crypt, 0..<field.count))
        }
        guard let found = memchr(field.baseAddress!, Int32(UInt8(ascii: "}")), field.count) else {
            return .failure(.unterminatedScheme)
        }
        let close = field.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
        let name = UnsafeBufferPointer(rebasing: field[1..<close])
        guard let scheme = PasswordScheme.match(name) else {
            return .failure(.unknownScheme(name: displayableSchemeName(name)))
        }
        return .success((scheme, (close + 1)..<field.count))
    }

    /// The name if it looks like a scheme name (upper-case letters, digits, `-`, `.`, `_`, at most 32),
    /// else nil: a lower-case word in braces could well be somebody's password.
    private static func displayableSchemeName(_ name: UnsafeBufferPointer<UInt8>) -> String? {
        guard (1...32).contains(name.count),
            name.allSatisfy({
                ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
            })
        else { return nil }
        return String(decoding: name, as: UTF8.self)
    }

    /// True when every byte is in 0x21...0x7E. No early exit: a branch-free loop the compiler can
    /// vectorize (it runs over every crypt hash of a table load).
    @inline(__always)
    static func isPrintableASCIIWithoutSpace(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let p = value.baseAddress else { return true }
        let n = value.count
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var bad: UInt64 = 0
        var i = 0
        // Eight bytes at a time: a byte below 0x21 (`(x - 0x21..) & ~x & 0x80..`, exact for a bound
        // of at most 0x80), a byte from 0x80 up (its top bit), a byte 0x7F (a zero byte of x ^ 0x7F..).
        while i + 8 <= n {
            let x = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
            let del = x ^ (ones &* 0x7F)
            bad |= ((x &- ones &* 0x21) & ~x & highs) | (x & highs) | ((del &- ones) & ~del & highs)
            i += 8
        }
        while i < n {
            let shifted = p[i] &- 0x21  // 0x21...0x7E become 0x00...0x5D, everything else more
            if shifted > 0x5D { bad = 1 }
            i += 1
        }
        return bad == 0
    }

    /// Checks a value's format for its scheme without computing any hash.
    static func check(scheme: PasswordScheme, value: UnsafeBufferPointer<UInt8>) -> StoredValueCheck {
        guard !value.isEmpty else { return .error(.emptyValue(scheme)) }
        switch scheme {
        case .plain:
            return .ok
        case .crypt, .sha512Crypt, .sha256Crypt, .blfCrypt, .md5Crypt:
            guard isPrintableASCIIWithoutSpace(value) else {
                return .error(.malformedValue(scheme, expected: "a crypt hash is printable ASCII without spaces"))
            }
            switch LibCrypt.checkSetting(value) {
            case .ok: return .ok
            case .legacy:
                return .warning(
                    "{\(scheme)} uses a weak legacy crypt method; set a new password with `saslgate user passwd USER`")
            case .disabled:
                return .warning(
                    "{\(scheme)} uses a crypt method this libcrypt has disabled; the user cannot log in until the password is set again"
                )
            case .invalid:
                return .warning(
                    "{\(scheme)} value is not a hash this libcrypt understands; the user cannot log in until the password is set again"
                )
            }
        case .sha:
            guard var decoded = Base64.decode(value), decoded.count == Insecure.SHA1.byteCount else {
                return .error(.malformedValue(scheme, expected: "base64 of a 20-byte SHA-1 digest"))
            }
            decoded.wipe()
            return .ok
        case .ssha256, .ssha512, .ssha:
            let digest = scheme == .ssha256 ? SHA256.byteCount : scheme == .ssha ? Insecure.SHA1.byteCount : SHA512.byteCount
            guard var decoded = Base64.decode(value), decoded.count > digest else {
                return .error(.malformedValue(scheme, expected: "base64 of a \(digest)-byte digest followed by a salt"))
            }
            decoded.wipe()
            return .ok
        case .cramMD5:
            guard value.count == 64, var decoded = Hex.decode(value) else {
                return .error(.malformedValue(scheme, expected: "64 hex digits"))
            }
            decoded.wipe()
            return .ok
        case .digestMD5:
            guard value.count == 32, var decoded = Hex.decode(value) else {
                return .error(.malformedValue(scheme, expected: "32 hex digits"))
            }
            decoded.wipe()
            return .ok
        case .scramSHA1, .scramSHA256:
            guard let hash = scheme.storedCredential?.scramHash, SCRAM.parseStored(value, hash: hash) != nil else {
                return .error(
                    .malformedValue(
                        scheme,
                        expected:
                            "iterations,salt,storedkey,serverkey with iterations 1 to \(SCRAM.maximumIterations) "
                            + "and base64 keys of the digest's length"
                    )
                )
            }
            return .ok
        }
    }

    // MARK: verification

    /// Checks `password`. `user` is the login name as the client gave it (`local@realm`), used only by
    /// DIGEST-MD5. This does the full hashing work: call it through a `BlockingExecutor` when
    /// `scheme.isExpensive`.
    public func verify(_ password: Secret, user: String) -> PasswordVerification {
        password.withBytes { pw in
            value.withBytes { stored in StoredPassword.verify(scheme: scheme, stored: stored, password: pw, user: user)
            }
        }
    }

    static func verify(
        scheme: PasswordScheme, stored: UnsafeBufferPointer<UInt8>, password: UnsafeBufferPointer<UInt8>, user: String
    ) -> PasswordVerification {
        switch scheme {
        case .plain:
            return ConstantTime.equals(stored, password) ? .match : .mismatch
        case .crypt, .sha512Crypt, .sha256Crypt, .blfCrypt, .md5Crypt:
            // A NUL cannot reach crypt(3); such a password cannot be the stored one.
            if password.contains(0) { return .mismatch }
            switch LibCrypt.withHash(passphrase: password, setting: stored, { ConstantTime.equals($0, stored) }) {
            case .success(let equal): return equal ? .match : .mismatch
            case .failure(.unusablePassphrase): return .mismatch
            case .failure(.unsupportedSetting(let e)):
                return .unverifiable("libcrypt cannot compute this {\(scheme)} hash (errno \(e))")
            case .failure(.gensaltFailed): return .unverifiable("libcrypt failure")
            }
        case .ssha256:
            return verifySalted(SHA256.self, stored: stored, password: password, scheme: scheme)
        case .ssha512:
            return verifySalted(SHA512.self, stored: stored, password: password, scheme: scheme)
        case .ssha:
            return verifySalted(Insecure.SHA1.self, stored: stored, password: password, scheme: scheme)
        case .sha:
            guard var expected = Base64.decode(stored), expected.count == Insecure.SHA1.byteCount else {
                return .unverifiable("malformed {SHA} value")
            }
            defer { expected.wipe() }
            var hasher = Insecure.SHA1()
            hasher.update(bufferPointer: UnsafeRawBufferPointer(password))
            let equal = hasher.finalize().withUnsafeBytes { ConstantTime.equals($0, expected) }
            return equal ? .match : .mismatch
        case .cramMD5:
            guard var expected = Hex.decode(stored), expected.count == CRAMMD5.contextLength else {
                return .unverifiable("malformed {CRAM-MD5} value")
            }
            var computed = CRAMMD5.context(password: password)
            defer {
                expected.wipe()
                computed.wipe()
            }
            return ConstantTime.equals(computed, expected) ? .match : .mismatch
        case .digestMD5:
            guard var expected = Hex.decode(stored), expected.count == DigestMD5.ha1Length else {
                return .unverifiable("malformed {DIGEST-MD5} value")
            }
            var computed = DigestMD5.ha1(login: user, password: password)
            defer {
                expected.wipe()
                computed.wipe()
            }
            return ConstantTime.equals(computed, expected) ? .match : .mismatch
        case .scramSHA1, .scramSHA256:
            guard let hash = scheme.storedCredential?.scramHash,
                case .scram(_, let salt, let iterations, let storedKey, _)? = SCRAM.parseStored(stored, hash: hash)
            else { return .unverifiable("malformed {\(scheme)} value") }
            let matches = SCRAM.matches(password, hash: hash, salt: salt, iterations: iterations, storedKey: storedKey)
            return matches ? .match : .mismatch
        }
    }

    private static func verifySalted<H: HashFunction>(
        _: H.Type, stored: UnsafeBufferPointer<UInt8>, password: UnsafeBufferPointer<UInt8>, scheme: PasswordScheme
    ) -> PasswordVerification {
        guard var decoded = Base64.decode(stored), decoded.count > H.Digest.byteCount else {
            return .unverifiable("malformed {\(scheme)} value")
        }
        defer { decoded.wipe() }
        let salt = decoded[H.Digest.byteCount...]
        var hasher = H()
        hasher.update(bufferPointer: UnsafeRawBufferPointer(password))
        hasher.update(data: Array(salt))
        let digest = hasher.finalize()
        let equal = digest.withUnsafeBytes { ConstantTime.equals($0, decoded[..<H.Digest.byteCount]) }
        return equal ? .match : .mismatch
    }

    // MARK: credentials

    /// The credential of kind `kind` for a challenge-response mechanism, converting from clear text
    /// when the entry is `{PLAIN}`. Nil when this entry cannot give that kind. SCRAM from clear text
    /// runs PBKDF2: call through a `BlockingExecutor`.
    public func credential(_ kind: CredentialScheme, user: String) -> Credential? {
        guard scheme.credentialSchemes.contains(kind) else { return nil }
        return value.withBytes { stored -> Credential? in
            switch (scheme, kind) {
            case (.plain, .plaintext):
                return .plaintext(Secret(stored))
            case (.plain, .cramMD5):
                var context = CRAMMD5.context(password: stored)
                defer { context.wipe() }
                return .cramMD5Context(Secret(context))
            case (.plain, .digestMD5):
                // The cleartext, not an HA1 of the normalized name: the client's digest is built from the
                // user name and realm exactly as it typed them (Dovecot accepts username="Test" and
                // username="u@example.org",realm=""), so the mechanism must compute HA1 from those.
                return .plaintext(Secret(stored))
            case (.plain, .scramSHA1), (.plain, .scramSHA256):
                guard let hash = kind.scramHash else { return nil }
                return try? SCRAM.makeCredential(
                    hash: hash, password: stored, salt: SecureRandom.bytes(SCRAM.saltLength))
            case (.cramMD5, .cramMD5):
                guard var bytes = Hex.decode(stored) else { return nil }
                defer { bytes.wipe() }
                return .cramMD5Context(Secret(bytes))
            case (.digestMD5, .digestMD5):
                guard var bytes = Hex.decode(stored) else { return nil }
                defer { bytes.wipe() }
                return .digestMD5HA1(Secret(bytes))
            case (.scramSHA1, .scramSHA1):
                return SCRAM.parseStored(stored, hash: .sha1)
            case (.scramSHA256, .scramSHA256):
                return SCRAM.parseStored(stored, hash: .sha256)
            default:
                return nil
            }
        }
    }

    /// True when producing `kind` costs real CPU (PBKDF2 from clear text).
    public func credentialIsExpensive(_ kind: CredentialScheme) -> Bool {
        scheme == .plain && (kind == .scramSHA1 || kind == .scramSHA256)
    }
}

// MARK: hashing new passwords

extension PasswordScheme {
    /// Hashes a new password and returns the whole field, e.g. `{CRYPT}$y$j9T$...`, ready for a
    /// passwd-file line. `user` (`local@realm`) is needed by DIGEST-MD5 only. Password-equivalent for
    /// PLAIN: do not log the result. Runs the full hash: slow for the crypt family by design.
    public func hash(_ password: Secret, user: String? = nil) throws(PasswordSchemeError) -> String {
        try PasswordScheme.checkStorable(password, for: self)
        let value = try password.withBytes { pw in
            Result { () throws(PasswordSchemeError) -> String in try hashValue(pw, user: user) }
        }.get()
        return "{\(rawValue)}" + value
    }

    private func hashValue(_ pw: UnsafeBufferPointer<UInt8>, user: String?) throws(PasswordSchemeError) -> String {
        switch self {
        case .plain:
            return String(decoding: pw, as: UTF8.self)
        case .crypt: return try cryptHash(pw, prefix: "$y$", count: 0)
        case .sha512Crypt: return try cryptHash(pw, prefix: "$6$", count: 0)
        case .sha256Crypt: return try cryptHash(pw, prefix: "$5$", count: 0)
        case .blfCrypt: return try cryptHash(pw, prefix: "$2y$", count: PasswordScheme.bcryptCost)
        case .md5Crypt, .ssha, .sha: throw .verifyOnly(self)
        case .ssha256: return saltedHash(SHA256.self, pw)
        case .ssha512: return saltedHash(SHA512.self, pw)
        case .cramMD5:
            var context = CRAMMD5.context(password: pw)
            defer { context.wipe() }
            return Hex.encodeString(context)
        case .digestMD5:
            guard let user, !user.isEmpty else { throw .needsUserName(self) }
            var ha1 = DigestMD5.ha1(login: user, password: pw)
            defer { ha1.wipe() }
            return Hex.encodeString(ha1)
        case .scramSHA1, .scramSHA256:
            guard let hash = storedCredential?.scramHash,
                let credential = try? SCRAM.makeCredential(
                    hash: hash, password: pw, salt: SecureRandom.bytes(SCRAM.saltLength)),
                var value = SCRAM.encodeStored(credential)
            else { throw .hashingFailed(self, "the SCRAM key derivation failed") }
            defer { value.wipe() }
            return String(decoding: value, as: UTF8.self)
        }
    }

    /// Refuses passwords a passwd-file line cannot hold or a scheme cannot take.
    public static func checkStorable(_ password: Secret, for scheme: PasswordScheme) throws(PasswordSchemeError) {
        if password.isEmpty { throw .passwordNotStorable("it is empty") }
        try password.withBytes { pw in
            Result { () throws(PasswordSchemeError) in try checkStorableBytes(pw, for: scheme) }
        }.get()
    }

    private static func checkStorableBytes(_ pw: UnsafeBufferPointer<UInt8>, for scheme: PasswordScheme)
        throws(PasswordSchemeError)
    {
        if pw.contains(0) { throw .passwordNotStorable("it contains a NUL byte") }
        if pw.contains(0x0A) || pw.contains(0x0D) { throw .passwordNotStorable("it contains a line break") }
        if scheme == .plain && pw.contains(UInt8(ascii: ":")) {
            throw .passwordNotStorable("{PLAIN} cannot hold ':' (the field separator); choose a hashing scheme")
        }
        if scheme.isCryptFamily && pw.count > LibCrypt.maxPassphraseLength {
            throw .passwordNotStorable("crypt(3) takes at most \(LibCrypt.maxPassphraseLength) bytes")
        }
    }

    private func cryptHash(_ pw: UnsafeBufferPointer<UInt8>, prefix: String, count: UInt) throws(PasswordSchemeError)
        -> String
    {
        switch LibCrypt.hash(passphrase: pw, prefix: prefix, count: count) {
        case .success(let h): return h
        case .failure(.gensaltFailed(let e)):
            throw .hashingFailed(self, "crypt_gensalt failed for \(prefix) (errno \(e))")
        case .failure(.unsupportedSetting(let e)): throw .hashingFailed(self, "crypt failed for \(prefix) (errno \(e))")
        case .failure(.unusablePassphrase): throw .passwordNotStorable("crypt(3) cannot take it")
        }
    }

    private func saltedHash<H: HashFunction>(_: H.Type, _ pw: UnsafeBufferPointer<UInt8>) -> String {
        let salt = SecureRandom.bytes(16)
        var hasher = H()
        hasher.update(bufferPointer: UnsafeRawBufferPointer(pw))
        hasher.update(data: salt)
        var out = Array(hasher.finalize()) + salt
        defer { out.wipe() }
        return Base64.encodeString(out)
    }
}

