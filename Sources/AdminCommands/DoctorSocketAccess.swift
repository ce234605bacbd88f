/// Can Postfix's `mail_owner` connect to the auth socket? Linux's permission rules, from `stat` data.

/// What `stat(2)` says about one path.
public struct DoctorFileStatus: Sendable, Equatable {
    /// `st_mode`: file type and permission bits.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32

    public init(mode: UInt32, uid: UInt32, gid: UInt32) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
    }

    static let typeMask: UInt32 = 0o170000
    public var isSocket: Bool { mode & DoctorFileStatus.typeMask == 0o140000 }
    public var isDirectory: Bool { mode & DoctorFileStatus.typeMask == 0o040000 }
    public var permissions: UInt32 { mode & 0o7777 }

    /// `ls -l` style: `srw-rw----`.
    public var modeString: String {
        let type: Character =
            switch mode & DoctorFileStatus.typeMask {
            case 0o140000: "s"
            case 0o040000: "d"
            case 0o120000: "l"
            case 0o100000: "-"
            default: "?"
            }
        var s = String(type)
        let bits = Array("rwxrwxrwx")
        for i in 0..<9 { s.append(mode & (0o400 >> UInt32(i)) != 0 ? bits[i] : "-") }
        return s
    }

    /// `0660`.
    public var octal: String {
        let digits = String(permissions, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

/// A user as the kernel sees a process running as it: uid, primary gid and supplementary groups
/// (Postfix's daemons run with `mail_owner`'s uid, its primary group and `initgroups` groups).
public struct DoctorAccount: Sendable, Equatable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]

    public init(name: String, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    var allGroups: Set<UInt32> { Set(groups + [gid]) }
}

public enum DoctorAccess {
    public static let read: UInt32 = 4
    public static let write: UInt32 = 2
    public static let search: UInt32 = 1

    /// One permission check the way Linux does it (no ACLs): the owner class if the uid matches, else
    /// the group class if any of the groups matches, else "other" — the first matching class decides,
    /// even if a later one would allow more. uid 0 passes (CAP_DAC_OVERRIDE).
    public static func permits(_ account: DoctorAccount, _ status: DoctorFileStatus, _ want: UInt32) -> Bool {
        if account.uid == 0 { return true }
        let bits: UInt32
        if account.uid == status.uid {
            bits = (status.mode >> 6) & 7
        } else if account.allGroups.contains(status.gid) {
            bits = (status.mode >> 3) & 7
        } else {
            bits = status.mode & 7
        }
        return bits & want == want
    }

    public enum Verdict: Sendable, Equatable {
        case allowed
        /// A directory on the way lacks search (x) permission for the account.
        case directoryDenied(path: String, status: DoctorFileStatus)
        /// The socket lacks write permission for the account (connect(2) needs write).
        case socketDenied(status: DoctorFileStatus)
    }

    /// connect(2) on a Unix socket needs search permission on every directory of the path and write
    /// permission on the socket. `directories` are the ones the process must traverse (for a chrooted
    /// process only those below the chroot), outermost first.
    public static func connectVerdict(
        _ account: DoctorAccount, socket: DoctorFileStatus, directories: [(path: String, status: DoctorFileStatus)]
    ) -> Verdict {
        for d in directories where !permits(account, d.status, search) {
            return .directoryDenied(path: d.path, status: d.status)
        }
        return permits(account, socket, write) ? .allowed : .socketDenied(status: socket)
    }

    /// The directories a process traverses to reach `path`: each parent from `/` (or from
    /// `chrootRoot`, exclusive, for a chrooted process) down to the socket's own directory.
    public static func traversedDirectories(of path: String, chrootRoot: String?) -> [String] {
        let p = doctorNormalizePath(path)
        var dirs: [String] = []
        var current = ""
        let components = p.split(separator: "/").dropLast()
        if chrootRoot == nil { dirs.append("/") }
        for c in components {
            current += "/" + c
            dirs.append(current)
        }
        if let root = chrootRoot.map(doctorNormalizePath) {
            // Inside the chroot the root itself is "/", which the process can always search once
            // chrooted into it (the chroot is entered as root).
            dirs = dirs.filter { $0.hasPrefix(root + "/") }
        }
        return dirs
    }
}

/// `saslgated.socket` (and its drop-ins) as far as the doctor needs it.
public struct DoctorSocketUnit: Sendable, Equatable {
    public var listenStreams: [String] = []
    public var socketUser: String?
    public var socketGroup: String?
    public var socketMode: String?

    public init() {}

    /// The first `ListenStream=` that is a path (the daemon uses the first socket it is given).
    public var socketPath: String? { listenStreams.first { $0.hasPrefix("/") } }

    /// Applies unit files in order (main file, then drop-ins sorted by name); an empty
    /// `ListenStream=` clears the list, as in systemd.
    public static func parse(_ texts: [String]) -> DoctorSocketUnit {
        var unit = DoctorSocketUnit()
        for (section, key, value) in texts.flatMap(doctorUnitEntries) where section == "Socket" {
            switch key {
            case "ListenStream":
                if value.isEmpty { unit.listenStreams = [] } else { unit.listenStreams.append(value) }
            case "SocketUser": unit.socketUser = value.isEmpty ? nil : value
            case "SocketGroup": unit.socketGroup = value.isEmpty ? nil : value
            case "SocketMode": unit.socketMode = value.isEmpty ? nil : value
            default: break
            }
        }
        return unit
    }
}

/// `saslgated.service` (and its drop-ins): who the daemon runs as.
public struct DoctorServiceUnit: Sendable, Equatable {
    public var user: String?
    public var supplementaryGroups: [String] = []
    /// `PrivateNetwork=yes`: an empty network namespace.
    public var privateNetwork = false
    /// `RestrictAddressFamilies=`; nil: not restricted.
    public var addressFamilies: [String]? = nil
    /// `IPAddressDeny=` after the drop-ins (an empty assignment resets it).
    public var ipAddressDeny: [String] = []

    public init() {}

    /// What keeps the service from IP networking, in words; empty: nothing.
    public var networkBlockers: [String] {
        var out: [String] = []
        if privateNetwork { out.append("PrivateNetwork=yes") }
        if let families = addressFamilies, !families.contains("AF_INET") || !families.contains("AF_INET6") {
            out.append("RestrictAddressFamilies=\(families.joined(separator: " "))")
        }
        if ipAddressDeny.contains("any") { out.append("IPAddressDeny=any") }
        return out
    }

    public static func parse(_ texts: [String]) -> DoctorServiceUnit {
        var unit = DoctorServiceUnit()
        for (section, key, value) in texts.flatMap(doctorUnitEntries) where section == "Service" {
            switch key {
            case "User": unit.user = value.isEmpty ? nil : value
            case "SupplementaryGroups":
                if value.isEmpty {
                    unit.supplementaryGroups = []
                } else {
                    unit.supplementaryGroups += doctorWords(value)
                }
            case "PrivateNetwork": unit.privateNetwork = ["yes", "true", "1", "on"].contains(value.lowercased())
            case "RestrictAddressFamilies":
                // A leading ~ denies the listed families instead; treat that as unrestricted for IP
                // unless it names them.
                if value.isEmpty {
                    unit.addressFamilies = nil
                } else if value.hasPrefix("~") {
                    let denied = doctorWords(String(value.dropFirst()))
                    unit.addressFamilies = denied.contains("AF_INET") || denied.contains("AF_INET6") ? [] : nil
                } else {
                    unit.addressFamilies = (unit.addressFamilies ?? []) + doctorWords(value)
                }
            case "IPAddressDeny":
                if value.isEmpty { unit.ipAddressDeny = [] } else { unit.ipAddressDeny += doctorWords(value) }
            default: break
            }
        }
        return unit
    }
}

/// `[Section]` / `Key=Value` lines of a systemd unit file (comments `#` `;`, continuation with `\`).
func doctorUnitEntries(_ text: String) -> [(section: String, key: String, value: String)] {
    var out: [(String, String, String)] = []
    var section = ""
    var pending = ""
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var line = pending + raw.doctorTrimmed()
        pending = ""
        if line.hasSuffix("\\") {
            line.removeLast()
            pending = line + " "
            continue
        }
        if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
        if line.hasPrefix("[") && line.hasSuffix("]") {
            section = String(line.dropFirst().dropLast())
            continue
        }
        guard let eq = line.firstIndex(of: "=") else { continue }
        out.append((section, line[..<eq].doctorTrimmed(), line[line.index(after: eq)...].doctorTrimmed()))
    }
    return out
}
