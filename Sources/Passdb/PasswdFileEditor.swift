import AuthCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an edit of a passwd-file did not happen. Descriptions are one line (except `fileInvalid`, which
/// lists the file's problems) and never contain a password or hash.
public enum PasswdFileEditError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `add` of a user the table already has.
    case userExists(user: String, path: String, line: Int)
    /// `passwd`/`del` of a user the table does not have (or the file does not exist).
    case userNotFound(user: String, path: String)
    /// The user name cannot be written as a passwd-file user.
    case invalidUserName(String, reason: String)
    /// The password field is not a valid `{SCHEME}value`.
    case invalidPasswordField(PasswordSchemeError)
    /// The current file has problems; it is not edited until they are fixed by hand.
    case fileInvalid(PasswdFileError)
    /// A system call failed.
    case io(path: String, operation: String, reason: String)

    /// True for the refusals a CLI reports with exit code 1 (exists / missing), false for real errors.
    public var isRefusal: Bool {
        switch self {
        case .userExists, .userNotFound: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .userExists(let user, let path, let line):
            "user '\(sanitizeForLog(user))' already exists (\(path):\(line)); use `saslgate user passwd` to change the password"
        case .userNotFound(let user, let path):
            "user '\(sanitizeForLog(user))' is not in \(path); see `saslgate user list`"
        case .invalidUserName(let user, let reason):
            "invalid user name '\(sanitizeForLog(user))': \(reason)"
        case .invalidPasswordField(let e):
            "\(e)"
        case .fileInvalid(let e):
            "\(e)\nfix these lines by hand, then try again"
        case .io(let path, let operation, let reason):
            "\(path): \(operation) failed: \(reason)"
        }
    }
}

/// Edits a passwd-file for the admin CLI: add a user, set a password, delete a user, list users.
///
/// Every edit is atomic and serialized between processes: it takes an exclusive `flock` on the sidecar
/// `PATH.lock`, reads the current file under the lock, changes only the affected line (comments and all
/// other lines stay byte for byte), writes a new file `.NAME.tmp.<16 random hex digits>` in the same
/// directory (created exclusively, never through a symbolic link) with the original's mode and owner
/// (0640 for a new file), `fsync`s it, renames it over the file and `fsync`s the directory. A symbolic
/// link at `PATH` is followed, so the link stays in place.
public struct PasswdFileEditor: Sendable {
    /// Mode of a file the editor creates.
    public static let newFileMode: mode_t = 0o640

    public let path: String
    public let defaultRealm: String?

    public init(path: String, defaultRealm: String? = nil) {
        self.path = path
        self.defaultRealm = PasswdFile.normalizedDefaultRealm(defaultRealm)
    }

    // MARK: operations

    /// Appends `user:passwordField`. Refuses a user that exists (in any realm spelling). Creates the file
    /// (mode 0640) when it does not exist.
    public func add(user: String, passwordField: String) throws(PasswdFileEditError) {
        try PasswdFileEditor.validateUserName(user)
        try validateField(passwordField)
        try edit { (contents, outcome, target) throws(PasswdFileEditError) in
            let key = PasswdFile.key(forUser: user, defaultRealm: defaultRealm)
            if let r = outcome.record(forKey: key) {
                throw .userExists(user: user, path: target, line: Int(r.line))
            }
            if let last = contents.last, last != UInt8(ascii: "\n") { contents.append(UInt8(ascii: "\n")) }
            contents += Array(user.utf8)
            contents.append(UInt8(ascii: ":"))
            contents += Array(passwordField.utf8)
            contents.append(UInt8(ascii: "\n"))
        }
    }

    /// Replaces the password field of `user`'s line; the other fields of the line are kept.
    public func setPassword(user: String, passwordField: String) throws(PasswdFileEditError) {
        try validateField(passwordField)
        try edit { (contents, outcome, target) throws(PasswdFileEditError) in
            let r = try record(of: user, in: outcome, target: target)
            contents.replaceSubrange(Int(r.userEnd) + 1..<Int(r.fieldEnd), with: Array(passwordField.utf8))
        }
    }

    /// Replaces the password field of `user`'s line with `passwordField` only if `isCurrent` says the
    /// field there now is the expected one (compare-and-swap under the lock: a rehash after a login
    /// never overwrites a password an admin or another login changed meanwhile). Returns whether it
    /// wrote; when not, the file is left untouched.
    public func replacePasswordField(
        user: String, with passwordField: String, ifCurrent isCurrent: (String) -> Bool
    ) throws(PasswdFileEditError) -> Bool {
        try validateField(passwordField)
        var replaced = false
        try edit(skipWriteUnlessChanged: true) { (contents, outcome, target) throws(PasswdFileEditError) in
            let r = try record(of: user, in: outcome, target: target)
            let range = Int(r.userEnd) + 1..<Int(r.fieldEnd)
            var current = String(decoding: contents[range], as: UTF8.self)
            defer { current = "" }
            guard isCurrent(current) else { return }
            contents.replaceSubrange(range, with: Array(passwordField.utf8))
            replaced = true
        }
        return replaced
    }

    /// Removes `user`'s line (with its line break).
    public func delete(user: String) throws(PasswdFileEditError) {
        try edit { (contents, outcome, target) throws(PasswdFileEditError) in
            let r = try record(of: user, in: outcome, target: target)
            var end = Int(r.lineEnd)
            while end < contents.count && contents[end] != UInt8(ascii: "\n") { end += 1 }
            if end < contents.count { end += 1 }
            contents.removeSubrange(Int(r.lineStart)..<end)
        }
    }

    /// User names as written in the file, in file order.
    public func listUsers() throws(PasswdFileEditError) -> [String] {
        let target = resolvedPath()
        guard let (buffer, _) = try readCurrent(target) else {
            throw .io(path: target, operation: "open", reason: errnoText(ENOENT))
        }
        let outcome = PasswdFile.Parser.parse(buffer.bytes, path: target, defaultRealm: defaultRealm)
        guard outcome.problems.isEmpty else {
            throw .fileInvalid(.invalid(path: target, problems: outcome.problems, total: outcome.problemCount))
        }
        return outcome.records.map {
            String(decoding: buffer.bytes[Int($0.lineStart)..<Int($0.userEnd)], as: UTF8.self)
        }
    }

    /// True if the table has `user` (any realm spelling); false when the file does not exist. Lock-free:
    /// a quick check before asking for a password, `add` checks again under the lock.
    public func containsUser(_ user: String) throws(PasswdFileEditError) -> Bool {
        let target = resolvedPath()
        guard let (buffer, _) = try readCurrent(target) else { return false }
        let outcome = PasswdFile.Parser.parse(buffer.bytes, path: target, defaultRealm: defaultRealm)
        guard outcome.problems.isEmpty else {
            throw .fileInvalid(.invalid(path: target, problems: outcome.problems, total: outcome.problemCount))
        }
        return outcome.record(forKey: PasswdFile.key(forUser: user, defaultRealm: defaultRealm)) != nil
    }

    /// Checks a name for `add`: one word, no `:`, not starting with `#`, a non-empty local part and realm.
    public static func validateUserName(_ user: String) throws(PasswdFileEditError) {
        let bytes = Array(user.utf8)
        guard !bytes.isEmpty else { throw .invalidUserName(user, reason: "it is empty") }
        if bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw .invalidUserName(user, reason: "it contains white space or a control character")
        }
        if bytes.contains(UInt8(ascii: ":")) { throw .invalidUserName(user, reason: "it contains ':'") }
        if bytes[0] == UInt8(ascii: "#") { throw .invalidUserName(user, reason: "it starts with '#' (a comment)") }
        let (local, realm) = LoginName.split(user)
        if let realm {
            if local.isEmpty { throw .invalidUserName(user, reason: "the part before '@' is empty") }
            if realm.isEmpty { throw .invalidUserName(user, reason: "the realm after '@' is empty") }
        }
    }

    // MARK: internals

    private func validateField(_ field: String) throws(PasswdFileEditError) {
        if field.utf8.contains(where: { $0 == UInt8(ascii: ":") || $0 == 0x0A || $0 == 0x0D || $0 == 0 }) {
            throw .invalidPasswordField(.passwordNotStorable("a password field cannot hold ':', a line break or NUL"))
        }
        do {
            _ = try StoredPassword(field: field)
        } catch {
            throw .invalidPasswordField(error)
        }
    }

    private func record(
        of user: String, in outcome: PasswdFile.ParseOutcome, target: String
    ) throws(PasswdFileEditError) -> PasswdFile.Record {
        guard let r = outcome.record(forKey: PasswdFile.key(forUser: user, defaultRealm: defaultRealm)) else {
            throw .userNotFound(user: user, path: target)
        }
        return r
    }

    /// The file to edit: the target of a symbolic link, else the path itself.
    func resolvedPath() -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Reads the current file (nil when it does not exist) and its stat.
    private func readCurrent(_ target: String) throws(PasswdFileEditError) -> (WipingBuffer, stat)? {
        let fd = open(target, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .io(path: target, operation: "open", reason: errnoText(errno))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: target, operation: "fstat", reason: errnoText(errno)) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw .io(path: target, operation: "open", reason: "not a regular file")
        }
        do {
            return (try WipingBuffer.read(fd: fd, sizeHint: Int(st.st_size)), st)
        } catch {
            throw .io(path: target, operation: "read", reason: errnoText(error.errno))
        }
    }

    /// Lock, read, parse, let `change` edit the bytes, write atomically, unlock.
    private func edit(
        skipWriteUnlessChanged: Bool = false,
        _ change: (inout [UInt8], PasswdFile.ParseOutcome, String) throws(PasswdFileEditError) -> Void
    ) throws(PasswdFileEditError) {
        let target = resolvedPath()
        let lockPath = target + ".lock"
        let lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lockFD >= 0 else { throw .io(path: lockPath, operation: "open lock file", reason: errnoText(errno)) }
        defer { close(lockFD) }  // releases the lock
        while flock(lockFD, LOCK_EX) != 0 {
            if errno != EINTR { throw .io(path: lockPath, operation: "flock", reason: errnoText(errno)) }
        }

        let current = try readCurrent(target)
        var contents = current.map { Array($0.0.bytes) } ?? []
        defer { contents.wipe() }
        let outcome =
            current.map { PasswdFile.Parser.parse($0.0.bytes, path: target, defaultRealm: defaultRealm) }
            ?? PasswdFile.ParseOutcome()
        guard outcome.problems.isEmpty else {
            throw .fileInvalid(.invalid(path: target, problems: outcome.problems, total: outcome.problemCount))
        }
        let before = skipWriteUnlessChanged ? contents : []
        try change(&contents, outcome, target)
        if skipWriteUnlessChanged && before == contents { return }
        try writeAtomically(contents, to: target, like: current?.1)
    }

    private func writeAtomically(_ contents: [UInt8], to target: String, like original: stat?)
        throws(PasswdFileEditError)
    {
        let (tmp, fd) = try createTemporary(besides: target)
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            if let original {
                if fchown(fd, original.st_uid, original.st_gid) != 0 {
                    throw .io(
                        path: tmp, operation: "chown to \(original.st_uid):\(original.st_gid) (the original's owner)",
                        reason: errnoText(errno) + "; run as root or as the file's owner"
                    )
                }
                if fchmod(fd, original.st_mode & 0o7777) != 0 {
                    throw .io(path: tmp, operation: "chmod", reason: errnoText(errno))
                }
            } else if fchmod(fd, PasswdFileEditor.newFileMode) != 0 {
                throw .io(path: tmp, operation: "chmod", reason: errnoText(errno))
            }
            var written = 0
            while written < contents.count {
                let n = contents.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io(path: tmp, operation: "write", reason: errnoText(errno))
                }
                written += n
            }
            if fsync(fd) != 0 { throw .io(path: tmp, operation: "fsync", reason: errnoText(errno)) }
        }
        if rename(tmp, target) != 0 {
            throw .io(path: target, operation: "rename \(tmp) over it", reason: errnoText(errno))
        }
        ok = true
        let dir = directory(of: target)
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            defer { close(dirFD) }
            if fsync(dirFD) != 0 { throw .io(path: dir, operation: "fsync directory", reason: errnoText(errno)) }
        }
    }

    /// Creates `.NAME.tmp.<random>` next to `target` with O_EXCL and O_NOFOLLOW: whatever someone with
    /// write access to the directory planted there (a symbolic link, a file at a guessed name) is
    /// neither followed nor truncated nor reused. A name that exists already is replaced by a new one.
    private func createTemporary(besides target: String) throws(PasswdFileEditError) -> (path: String, fd: Int32) {
        let name = target.lastIndex(of: "/").map { String(target[target.index(after: $0)...]) } ?? target
        var attempts = 0
        while true {
            let tmp = directory(of: target) + "/." + name + ".tmp." + Hex.encodeString(SecureRandom.bytes(8))
            let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd >= 0 { return (tmp, fd) }
            let error = errno
            attempts += 1
            if error != EEXIST || attempts == 8 { throw .io(path: tmp, operation: "create", reason: errnoText(error)) }
        }
    }

    private func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
