import AuthCore
import CBerkeleyDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One record of a Cyrus sasldb2 file: key `authid NUL realm NUL property`, value raw bytes.
struct SASLDB2Record: Sendable {
    var authid: [UInt8]
    var realm: [UInt8]
    var property: [UInt8]
    /// Password-equivalent for `userPassword` (the cleartext): never log it.
    var value: Secret
}

/// Reads a Cyrus SASL sasldb2 file as Debian's libsasl2-modules-db writes it: a Berkeley DB 5.3 hash
/// database, opened read-only with `DB_HASH` and no environment (so nothing is written next to it).
/// Values are copied into wiping `Secret`s and Berkeley DB's copies are zeroed before they are freed.
enum SASLDB2File {
    /// What was read: the well-formed records and the number of keys that are not
    /// `authid NUL realm NUL property`.
    struct Contents: Sendable {
        var records: [SASLDB2Record]
        var malformedKeys: Int
    }

    static func read(path: String) throws(SASLDBError) -> Contents {
        // Clear errors for the common mistakes before Berkeley DB gives a terse one.
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw .sourceUnreadable(path: path, reason: errnoText(errno))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .sourceUnreadable(path: path, reason: "not a regular file") }
        if let magic = firstBytes(path, 16), magic == Array("SQLite format 3\0".utf8) {
            throw .sourceUnreadable(
                path: path, reason: "this is a SQLite file (a saslgate store?), not a Cyrus sasldb2 (Berkeley DB) file")
        }

        var dbp: UnsafeMutablePointer<DB>?
        var rc = db_create(&dbp, nil, 0)
        guard rc == 0, let db = dbp else {
            throw .sourceUnreadable(path: path, reason: "db_create failed: \(String(cString: db_strerror(rc)))")
        }
        BerkeleyDBMessages.clear()
        db.pointee.set_errcall(db, { _, _, message in
            if let message { BerkeleyDBMessages.append(String(cString: message)) }
        })
        rc = db.pointee.open(db, nil, path, nil, DB_HASH, UInt32(DB_RDONLY), 0)
        guard rc == 0 else {
            let detail = BerkeleyDBMessages.take()
            _ = db.pointee.close(db, 0)
            var reason = String(cString: db_strerror(rc))
            if !detail.isEmpty { reason += " (\(detail.joined(separator: "; ")))" }
            throw .sourceUnreadable(
                path: path,
                reason: "\(reason); expected a Berkeley DB hash file made by saslpasswd2 (`file \(path)` says "
                    + "'Berkeley DB (Hash, version 9...)'); a gdbm or LMDB sasldb2 must be converted first")
        }
        defer { _ = db.pointee.close(db, 0) }

        var cursorp: UnsafeMutablePointer<DBC>?
        rc = db.pointee.cursor(db, nil, &cursorp, 0)
        guard rc == 0, let cursor = cursorp else {
            throw .sourceUnreadable(path: path, reason: "cannot read it: \(String(cString: db_strerror(rc)))")
        }
        defer { _ = cursor.pointee.close(cursor) }

        var contents = Contents(records: [], malformedKeys: 0)
        while true {
            var key = DBT()
            var data = DBT()
            key.flags = UInt32(DB_DBT_MALLOC)
            data.flags = UInt32(DB_DBT_MALLOC)
            rc = cursor.pointee.get(cursor, &key, &data, UInt32(DB_NEXT))
            if rc == DB_NOTFOUND { break }
            guard rc == 0 else {
                throw .sourceUnreadable(path: path, reason: "reading a record failed: \(String(cString: db_strerror(rc)))")
            }
            let keyBytes = takeBytes(&key)
            let value = takeSecret(&data)
            let parts = keyBytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, !parts[2].contains(0) else {
                contents.malformedKeys += 1
                continue
            }
            contents.records.append(
                SASLDB2Record(authid: Array(parts[0]), realm: Array(parts[1]), property: Array(parts[2]), value: value))
        }
        return contents
    }

    /// Copies a `DB_DBT_MALLOC` buffer and frees it.
    private static func takeBytes(_ dbt: inout DBT) -> [UInt8] {
        guard let p = dbt.data else { return [] }
        let out = Array(UnsafeRawBufferPointer(start: p, count: Int(dbt.size)))
        free(p)
        dbt.data = nil
        return out
    }

    /// Copies a `DB_DBT_MALLOC` buffer into a `Secret`, zeroes it and frees it.
    private static func takeSecret(_ dbt: inout DBT) -> Secret {
        guard let p = dbt.data else { return Secret([UInt8]()) }
        let secret = Secret(UnsafeRawBufferPointer(start: p, count: Int(dbt.size)))
        explicitZero(p, Int(dbt.size))
        free(p)
        dbt.data = nil
        return secret
    }

    private static func firstBytes(_ path: String, _ n: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: n)
        let got = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, n) }
        return got == n ? buf : nil
    }
}

/// Messages Berkeley DB reports through its error callback during one open (a C callback cannot
/// capture context, so they are collected here). They never contain record contents.
private enum BerkeleyDBMessages {
    static let messages = Mutex<[String]>([])
    static func clear() { messages.withLock { $0.removeAll() } }
    static func append(_ m: String) { messages.withLock { if $0.count < 8 { $0.append(m) } } }
    static func take() -> [String] { messages.withLock { m in defer { m.removeAll() }; return m } }
}
