import AuthConfig

/// The socket on disk as smtpd meets it: it exists and is a socket, `mail_owner` may reach and connect
/// to it (inside the chroot when smtpd is chrooted), not every local user may, and `client_allowlist`
/// lets `mail_owner` in.
struct SocketFileCheck {
    let environment: any DoctorEnvironment
    let configPath: String
    let daemon: DaemonSocket
    let settings: Settings
    /// `mail_owner`; the permission checks are left out when it does not exist.
    let account: DoctorAccount?

    /// The findings, and whether there is a socket to connect to.
    func run(_ path: String, chrootRoot: String?) -> (findings: [DoctorFinding], isSocket: Bool) {
        let status: DoctorFileStatus
        switch environment.status(path) {
        case .failure(let error) where error.isMissing:
            let finding = DoctorFinding.fail(
                "\(path) does not exist: saslgated is not running there\(path == daemon.path ? "" : " (it listens on \(daemon.path))")",
                fix: path == daemon.path ? daemon.startCommand(configPath: configPath) : "point Postfix at \(daemon.path) (see above)")
            return ([finding], false)
        case .failure(let error):
            if error.isPermission && environment.effectiveUID != 0 {
                return (
                    [
                        .warning(
                            "cannot look at \(path) as uid \(environment.effectiveUID) (\(error)); socket checks skipped",
                            fix: "run saslgate doctor as root")
                    ], false
                )
            }
            return ([.fail("cannot look at \(path): \(error)", fix: "check the directories on the way")], false)
        case .success(let s) where !s.isSocket:
            return (
                [.fail("\(path) exists but is not a socket (\(s.modeString))", fix: "remove it; saslgated (or systemd) creates the socket")],
                false
            )
        case .success(let s):
            status = s
        }

        var findings: [DoctorFinding] = []
        if let account {
            findings.append(accessFinding(path, status: status, chrootRoot: chrootRoot, account: account))
        }
        if status.permissions & 0o002 != 0 {
            findings.append(
                .warning(
                    "\(path) is writable by every local user (\(status.modeString)): anyone on this host can try passwords",
                    fix: daemon.fromSystemd ? "SocketMode=0660 in saslgated.socket" : "listen_mode = 0660 in \(configPath)"))
        }
        if let account, !settings.clientAllowlist.isEmpty, !allowlistAdmits(settings.clientAllowlist, account) {
            findings.append(
                .fail(
                    "client_allowlist = \(settings.clientAllowlist.joined(separator: " ")) does not admit \(account.name) (mail_owner): saslgated closes Postfix's connections",
                    fix: "add \(account.name) to client_allowlist in \(configPath)"))
        }
        return (findings, true)
    }

    /// connect(2) as `mail_owner`: search permission on every directory on the way, write permission on
    /// the socket.
    private func accessFinding(
        _ path: String, status: DoctorFileStatus, chrootRoot: String?, account: DoctorAccount
    ) -> DoctorFinding {
        var directories: [(path: String, status: DoctorFileStatus)] = []
        for dir in DoctorAccess.traversedDirectories(of: path, chrootRoot: chrootRoot) {
            if case .success(let s) = environment.status(dir) { directories.append((dir, s)) }
        }
        let who = describe(account)
        switch DoctorAccess.connectVerdict(account, socket: status, directories: directories) {
        case .allowed:
            return .ok("\(path) is a socket (\(status.modeString) \(owner(of: status))) that \(who) may connect to")
        case .directoryDenied(let dir, let s):
            return .fail(
                "\(who) cannot reach \(path): no search permission on \(dir) (\(s.modeString) \(owner(of: s)))",
                fix:
                    "let \(account.name) enter \(dir) (e.g. chgrp \(account.name) \(dir); chmod g+x \(dir)), or put the socket in queue_directory/private"
            )
        case .socketDenied:
            let fix =
                daemon.fromSystemd
                ? "SocketUser=\(account.name), SocketGroup=\(account.name), SocketMode=0660 in saslgated.socket, then systemctl daemon-reload; systemctl restart saslgated.socket"
                : "listen_user = \(account.name), listen_group = \(account.name), listen_mode = 0660 in \(configPath), then restart saslgated"
            return .fail(
                "\(who) may not connect to \(path) (\(status.modeString) \(owner(of: status)); connect needs write permission)",
                fix: fix)
        }
    }

    /// `user:group` of a file, by name where the system knows them.
    private func owner(of status: DoctorFileStatus) -> String {
        "\(environment.userName(uid: status.uid) ?? String(status.uid)):\(environment.groupName(gid: status.gid) ?? String(status.gid))"
    }

    /// `postfix (mail_owner, uid 102, groups postfix,sasl)`.
    private func describe(_ account: DoctorAccount) -> String {
        let groups = ([account.gid] + account.groups).reduce(into: [UInt32]()) { if !$0.contains($1) { $0.append($1) } }
        let names = groups.map { environment.groupName(gid: $0) ?? String($0) }
        return "\(account.name) (mail_owner, uid \(account.uid), groups \(names.joined(separator: ",")))"
    }

    /// An entry names the account, its uid, or (`@group`) one of its groups.
    private func allowlistAdmits(_ list: [String], _ account: DoctorAccount) -> Bool {
        let groupNames = Set(([account.gid] + account.groups).compactMap { environment.groupName(gid: $0) })
        for entry in list {
            if entry == account.name || entry == String(account.uid) { return true }
            if entry.hasPrefix("@"), groupNames.contains(String(entry.dropFirst())) { return true }
        }
        return false
    }
}
