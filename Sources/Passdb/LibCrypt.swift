import AuthCore
internal import CCrypt

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system's crypt(3) (libxcrypt) through the reentrant calls: `crypt_rn` with a private, zeroed,
/// heap-allocated `struct crypt_data` per call (32 KiB: too big for a thread's stack to be wise) and
/// `crypt_gensalt_rn` with the operating system's randomness. Everything that held key material is
/// wiped before it is freed.
enum LibCrypt {
    enum Failure: Error, Equatable {
        /// The passphrase has a NUL byte or is longer than libcrypt accepts (512 bytes).
        case unusablePassphrase
        /// libcrypt does not know or refuses this setting/hash (errno from crypt_rn).
        case unsupportedSetting(errno: Int32)
        /// crypt_gensalt_rn failed (unknown prefix, bad count, no randomness).
        case gensaltFailed(errno: Int32)
    }

    /// Where a stored crypt hash stands with this libcrypt, without hashing (`crypt_checksalt`).
    enum SettingStatus: Equatable {
        case ok
        case invalid
        case disabled
        case legacy
    }

    static let maxPassphraseLength = Int(CRYPT_MAX_PASSPHRASE_SIZE) - 1

    /// Hashes `passphrase` with `setting` (a salt string or a full stored hash) and hands the NUL-free
    /// result to `body` while it is still in the private buffer.
    static func withHash<R>(
        passphrase: UnsafeBufferPointer<UInt8>, setting: UnsafeBufferPointer<UInt8>,
        _ body: (UnsafeBufferPointer<UInt8>) -> R
    ) -> Result<R, Failure> {
        guard passphrase.count <= maxPassphraseLength, !passphrase.contains(0) else {
            return .failure(.unusablePassphrase)
        }
        guard setting.count < Int(CRYPT_OUTPUT_SIZE), !setting.contains(0) else {
            return .failure(.unsupportedSetting(errno: EINVAL))
        }
        let size = MemoryLayout<crypt_data>.size
        let data = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<crypt_data>.alignment)
        // C strings for the passphrase and the setting, also wiped afterwards.
        let phrase = UnsafeMutablePointer<CChar>.allocate(capacity: passphrase.count + 1)
        let settingC = UnsafeMutablePointer<CChar>.allocate(capacity: setting.count + 1)
        defer {
            explicitZero(data, size)
            data.deallocate()
            explicitZero(phrase, passphrase.count + 1)
            phrase.deallocate()
            explicitZero(settingC, setting.count + 1)
            settingC.deallocate()
        }
        memset(data, 0, size)
        copyCString(passphrase, to: phrase)
        copyCString(setting, to: settingC)
        errno = 0
        guard let result = crypt_rn(phrase, settingC, data, Int32(size)) else {
            return .failure(.unsupportedSetting(errno: errno))
        }
        let length = strlen(result)
        return .success(
            result.withMemoryRebound(to: UInt8.self, capacity: length) {
                body(UnsafeBufferPointer(start: $0, count: length))
            }
        )
    }

    /// A new setting (salt string) for `prefix` (`$y$`, `$6$`, `$5$`, `$2b$`); `count` 0 picks
    /// libcrypt's default cost, except for bcrypt where it means cost 5, so callers pass one.
    static func gensalt(prefix: String, count: UInt) -> Result<String, Failure> {
        var output = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        errno = 0
        let ok = prefix.withCString { p in
            output.withUnsafeMutableBufferPointer { buf in
                crypt_gensalt_rn(p, count, nil, 0, buf.baseAddress, Int32(buf.count)) != nil
            }
        }
        guard ok else { return .failure(.gensaltFailed(errno: errno)) }
        return .success(
            String(decoding: output.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Full hash of `passphrase` with a fresh salt.
    static func hash(passphrase: UnsafeBufferPointer<UInt8>, prefix: String, count: UInt) -> Result<String, Failure> {
        let setting: String
        switch gensalt(prefix: prefix, count: count) {
        case .success(let s): setting = s
        case .failure(let f): return .failure(f)
        }
        let settingBytes = Array(setting.utf8)
        return settingBytes.withUnsafeBufferPointer { settingBuffer in
            withHash(passphrase: passphrase, setting: settingBuffer) { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Prefixes of the current methods: such a hash is taken as OK without asking libcrypt, which
    /// keeps a million-line table fast to load (a damaged one is reported when it is verified).
    private static let currentPrefixes: [[UInt8]] = ["$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$"].map {
        Array($0.utf8)
    }

    /// Classifies a stored hash without computing anything.
    static func checkSetting(_ setting: UnsafeBufferPointer<UInt8>) -> SettingStatus {
        guard setting.count < Int(CRYPT_OUTPUT_SIZE) else { return .invalid }
        if setting.count > 10 {
            // The common prefixes by hand, then the list (this runs once per line of a table load).
            let b = setting.baseAddress!
            if b[0] == 0x24 && b[2] == 0x24 && (b[1] == 0x36 || b[1] == 0x35 || b[1] == 0x79 || b[1] == 0x37) {
                return .ok  // $6$ $5$ $y$ $7$
            }
            for prefix in currentPrefixes where setting.starts(with: prefix) { return .ok }
        }
        guard !setting.contains(0) else { return .invalid }
        // Stack memory: this runs once per line when a table loads.
        let status = withUnsafeTemporaryAllocation(of: CChar.self, capacity: setting.count + 1) { c in
            for i in 0..<setting.count { c[i] = CChar(bitPattern: setting[i]) }
            c[setting.count] = 0
            return crypt_checksalt(c.baseAddress!)
        }
        switch status {
        case CRYPT_SALT_OK: return .ok
        case CRYPT_SALT_METHOD_DISABLED: return .disabled
        case CRYPT_SALT_METHOD_LEGACY: return .legacy
        default: return .invalid
        }
    }

    private static func copyCString(_ bytes: UnsafeBufferPointer<UInt8>, to c: UnsafeMutablePointer<CChar>) {
        for i in 0..<bytes.count { c[i] = CChar(bitPattern: bytes[i]) }
        c[bytes.count] = 0
    }
}
