import AuthConfig
import Logging
import Passdb

#if canImport(Glibc)
import Glibc
#endif

/// The keys of `jwks_file`, reloaded when the file changes: its identity (device, inode, size, mtime,
/// ctime) is compared at most once per `checkInterval` (1 s, like the passwd-file table), the file is
/// read through the passdb's executor, never on the caller's thread. A file that became unreadable or
/// invalid leaves the last good keys in service (logged as an error, so a half-written file does not
/// lock everyone out); a rotation is in force for tokens checked more than a second after it.
actor JWKSFileSource {
    let path: String
    let checkInterval: Duration
    private let executor: any BlockingExecutor
    private let logger: Logger
    private var stamp: FileStamp?
    private var keyring: JWTKeyring?
    private var lastCheck: ContinuousClock.Instant?

    init(path: String, checkInterval: Duration = .seconds(1), executor: any BlockingExecutor, logger: Logger) {
        self.path = path
        self.checkInterval = checkInterval
        self.executor = executor
        self.logger = logger
    }

    /// Reads and checks the file at once (for opening the passdb and `--check`): a missing or broken
    /// file is a configuration error there.
    nonisolated static func preflight(path: String) throws(TokenRefusal) -> Int {
        switch readSmallFile(path, limit: JWTKeyring.maxDocumentSize) {
        case .failure(let problem): throw TokenRefusal("cannot read \(path): \(problem)")
        case .success(let bytes): return try JWTKeyring.check(bytes).count
        }
    }

    /// The keys in force now, or why there are none.
    func current() async -> Result<JWTKeyring, KeysUnavailable> {
        let now = ContinuousClock.now
        if lastCheck == nil || now - lastCheck! >= checkInterval {
            lastCheck = now
            await reloadIfChanged()
        }
        guard let keyring else { return .failure(KeysUnavailable("no usable keys in \(path)")) }
        return .success(keyring)
    }

    private func reloadIfChanged() async {
        let path = self.path
        let known = stamp
        let read = await executor.run { () -> (FileStamp?, Result<[UInt8], FileReadProblem>?) in
            let seen = FileStamp.of(path)
            if let seen, seen == known { return (seen, nil) }
            return (seen, readSmallFile(path, limit: JWTKeyring.maxDocumentSize))
        }
        guard let result = read.1 else { return }  // unchanged
        switch result {
        case .failure(let problem):
            logger.error("oauth2: cannot read \(path): \(problem); keeping the keys loaded before")
        case .success(let bytes):
            do {
                keyring = try await JWTKeyring.load(bytes)
                stamp = read.0
                logger.info("oauth2: keys loaded from \(path): \(keyring!.keys.count) key(s)")
            } catch {
                logger.error("oauth2: \(path): \(error.reason); keeping the keys loaded before")
            }
        }
    }
}

/// What identifies one version of a file (a rename changes the inode, a rewrite the size or times).
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtime: Int
    var mtimeNanoseconds: Int
    var ctime: Int
    var ctimeNanoseconds: Int

    static func of(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileStamp(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size), mtime: Int(st.st_mtim.tv_sec),
            mtimeNanoseconds: Int(st.st_mtim.tv_nsec), ctime: Int(st.st_ctim.tv_sec), ctimeNanoseconds: Int(st.st_ctim.tv_nsec))
    }
}
