import AuthConfig
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import AdminCommands

@Suite("saslgate doctor: Postfix's SASL mechanism filters")
struct DoctorMechanismFilterTests {
    let plain = DoctorMechanism.predicted("PLAIN")
    let login = DoctorMechanism.predicted("LOGIN")
    let cram = DoctorMechanism.predicted("CRAM-MD5")
    let digest = DoctorMechanism.predicted("DIGEST-MD5")
    let scram = DoctorMechanism.predicted("SCRAM-SHA-256")
    let anonymous = DoctorMechanism.predicted("ANONYMOUS")
    let external = DoctorMechanism.predicted("EXTERNAL")
    let apop = DoctorMechanism.predicted("APOP")
    var all: [DoctorMechanism] { [plain, login, cram, digest, scram, anonymous, external, apop] }

    func names(_ m: [DoctorMechanism]) -> [String] { m.map(\.name) }

    @Test func flagsFollowDovecot() {
        #expect(plain.description == "PLAIN(plaintext)")
        #expect(digest.description == "DIGEST-MD5(dictionary,active,mutual-auth)")
        #expect(external.description == "EXTERNAL")
        #expect(apop.description == "APOP(private,dictionary,active)")
        #expect(DoctorMechanism(name: "x-new", flags: ["Plaintext"]).description == "X-NEW(plaintext)")
    }

    @Test func defaultNoanonymous() {
        let options = PostfixSASLSecurityOptions("noanonymous")
        #expect(options.unknown.isEmpty)
        // APOP is private: Postfix never offers it.
        #expect(
            names(options.filter(all)) == ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256", "EXTERNAL"])
        #expect(options.rejection(of: anonymous) == "noanonymous drops anonymous")
        #expect(options.rejection(of: apop) == "private")
    }

    @Test func noplaintextLeavesNothingOfPlainAndLogin() {
        let options = PostfixSASLSecurityOptions("noplaintext")
        #expect(options.filter([plain, login]).isEmpty)
        #expect(options.rejection(of: plain) == "noplaintext drops plaintext")
        #expect(names(options.filter([plain, login, cram])) == ["CRAM-MD5"])
    }

    @Test func positiveOptionsRequireTheFlag() {
        #expect(names(PostfixSASLSecurityOptions("mutual_auth").filter(all)) == ["DIGEST-MD5", "SCRAM-SHA-256"])
        #expect(PostfixSASLSecurityOptions("forward_secrecy").filter(all).isEmpty)
        #expect(
            names(PostfixSASLSecurityOptions("noanonymous, noactive,nodictionary").filter(all))
                == ["PLAIN", "LOGIN", "SCRAM-SHA-256", "EXTERNAL"])
        #expect(PostfixSASLSecurityOptions("mutual_auth").rejection(of: plain) == "mutual_auth needs mutual-auth")
    }

    @Test func optionWordsAreCaseInsensitiveAndUnknownOnesReported() {
        #expect(PostfixSASLSecurityOptions("NoPlainText").filter([plain]).isEmpty)
        let bad = PostfixSASLSecurityOptions("noanonymous, noplain")
        #expect(bad.unknown == ["noplain"])
        #expect(PostfixSASLSecurityOptions("").filter([plain, anonymous]).map(\.name) == ["PLAIN", "ANONYMOUS"])
    }

    @Test func mechanismFilterDefaultDropsExternal() {
        let filter = PostfixMechanismFilter(PostfixMechanismFilter.postfixDefault)
        #expect(names(filter.filter([plain, login, external])) == ["PLAIN", "LOGIN"])
        #expect(filter.unevaluable.isEmpty)
    }

    @Test func mechanismFilterEmptyDropsEverything() {
        // Observed with Postfix 3.7.11: "fatal: smtpd_sasl_mechanism_filter discards all mechanisms in 'PLAIN LOGIN'".
        #expect(PostfixMechanismFilter("").filter([plain, login]).isEmpty)
    }

    @Test func mechanismFilterFirstMatchDecidesCaseInsensitively() {
        let filter = PostfixMechanismFilter("!PLAIN, login, cram-md5")
        #expect(names(filter.filter([plain, login, cram, scram])) == ["LOGIN", "CRAM-MD5"])
        #expect(PostfixMechanismFilter("!plain, !login, static:rest").filter([plain, login]).isEmpty)
        #expect(names(PostfixMechanismFilter("plain !plain").filter([plain])) == ["PLAIN"])
        #expect(names(PostfixMechanismFilter("!!plain").filter([plain])) == ["PLAIN"])
    }

    @Test func mechanismFilterAbsentOnOldPostfixKeepsAll() {
        #expect(PostfixMechanismFilter(nil).filter([plain, external]).count == 2)
    }

    @Test func mechanismFilterTablesAreTakenOptimistically() {
        let filter = PostfixMechanismFilter("!hash:/etc/postfix/no-mechs, pcre:/etc/postfix/mechs")
        #expect(filter.unevaluable == ["hash:/etc/postfix/no-mechs", "pcre:/etc/postfix/mechs"])
        #expect(names(filter.filter([plain, login])) == ["PLAIN", "LOGIN"])
    }
}

@Suite("saslgate doctor: the auth-client greeting")
struct DoctorGreetingTests {
    func lines(_ text: String) -> [[String]] {
        text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test func saslgatedGreeting() throws {
        let g = try DoctorGreeting.parse(
            lines("VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t42\nCUID\t1\nCOOKIE\tabc\nDONE")
        ).get()
        #expect(g.major == 1 && g.minor == 2)
        #expect(
            g.mechanisms == [
                DoctorMechanism(name: "PLAIN", flags: ["plaintext"]),
                DoctorMechanism(name: "LOGIN", flags: ["plaintext"]),
            ])
    }

    @Test func wrongSocketsAndBrokenGreetings() {
        // The auth-master socket: VERSION, SPID and nothing more.
        #expect(throws: DoctorGreetingError.self) {
            try DoctorGreeting.parse(lines("VERSION\t1\t1\nSPID\t7\nDONE")).get()
        }
        #expect(throws: DoctorGreetingError.self) {
            try DoctorGreeting.parse(lines("VERSION\t2\t0\nMECH\tPLAIN\nDONE")).get()
        }
        #expect(throws: DoctorGreetingError.self) {
            try DoctorGreeting.parse(lines("VERSION\nMECH\tPLAIN\nDONE")).get()
        }
        #expect(throws: DoctorGreetingError.self) { try DoctorGreeting.parse(lines("MECH\tPLAIN\nDONE")).get() }
        #expect(throws: DoctorGreetingError.self) {
            try DoctorGreeting.parse(lines("VERSION\t1\t2\nMECH\tPLAIN")).get()
        }
    }

    /// The probe of a real socket reads the greeting up to DONE.
    @Test func probeReadsTheGreeting() throws {
        let dir = TempDir()
        let server = FakeAuthServer(path: dir.file("auth"), user: "bob", password: "x")
        defer { server.stop() }
        let g = try SystemDoctorEnvironment().greeting(socketPath: dir.file("auth"), timeout: .seconds(10)).get()
        #expect(g.major == 1 && g.mechanisms.map(\.name) == ["PLAIN", "LOGIN"])
    }

    /// The probe opens as Postfix does: VERSION 1 0 and CPID, at once, without waiting for the greeting.
    /// The server here never answers, so the probe gives up; what it wrote stays queued in the socket.
    @Test func probeOpensLikePostfix() throws {
        let dir = TempDir()
        let listener = try UnixListener(path: dir.file("auth"))
        defer { listener.close() }
        let result = SystemDoctorEnvironment().greeting(socketPath: dir.file("auth"), timeout: .milliseconds(100))
        #expect(throws: DoctorGreetingError.self) { try result.get() }
        #expect(listener.acceptAndReadAll() == "VERSION\t1\t0\nCPID\t\(getpid())\n")
    }
}

/// A listening Unix socket that nobody serves: connections wait in the backlog until accepted.
struct UnixListener {
    let fd: Int32

    struct Failure: Error {}

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(fd, 4) == 0 else { throw Failure() }
    }

    /// Takes the first waiting connection and reads what its client wrote, up to its close.
    func acceptAndReadAll() -> String {
        let connection = accept(fd, nil, nil)
        guard connection >= 0 else { return "" }
        defer { Glibc.close(connection) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func close() { Glibc.close(fd) }
}

@Suite("saslgate doctor: socket path and chroot")
struct DoctorPathTests {
    @Test func chrootColumn() {
        #expect(PostfixChroot.isChrooted(column: "y", compatibilityLevel: "3.6"))
        #expect(!PostfixChroot.isChrooted(column: "n", compatibilityLevel: "0"))
        // '-': y below compatibility_level 1 (observed: "using backwards-compatible default setting chroot=y").
        #expect(PostfixChroot.isChrooted(column: "-", compatibilityLevel: "0"))
        #expect(PostfixChroot.isChrooted(column: "-", compatibilityLevel: ""))
        #expect(!PostfixChroot.isChrooted(column: "-", compatibilityLevel: "1"))
        #expect(!PostfixChroot.isChrooted(column: "-", compatibilityLevel: "2"))
        #expect(!PostfixChroot.isChrooted(column: "-", compatibilityLevel: "3.6"))
        #expect(
            PostfixChroot.explanation(column: "-", compatibilityLevel: "3.6")
                == "master.cf chroot column '-', which means n with compatibility_level = 3.6")
    }

    @Test func relativePathIsBelowTheQueueDirectoryChrootedOrNot() {
        for chrooted in [false, true] {
            let p = PostfixSASLPath.resolve("private/auth", queueDirectory: "/var/spool/postfix", chrooted: chrooted)
            #expect(p.hostPath == "/var/spool/postfix/private/auth")
            #expect(p.isRelative && !p.absoluteInChroot)
        }
        #expect(
            PostfixSASLPath.resolve("unix:./private//auth", queueDirectory: "/var/spool/postfix/", chrooted: true)
                .hostPath == "/var/spool/postfix/private/auth")
    }

    @Test func absolutePath() {
        let free = PostfixSASLPath.resolve("/run/saslgate/auth", queueDirectory: "/var/spool/postfix", chrooted: false)
        #expect(free.hostPath == "/run/saslgate/auth" && !free.absoluteInChroot && !free.isRelative)
        // Chrooted: the same string names a file below the chroot.
        let jailed = PostfixSASLPath.resolve(
            "unix:/var/spool/postfix/private/auth", queueDirectory: "/var/spool/postfix", chrooted: true)
        #expect(jailed.absoluteInChroot)
        #expect(jailed.hostPath == "/var/spool/postfix/var/spool/postfix/private/auth")
    }

    @Test func inetPath() {
        let p = PostfixSASLPath.resolve("inet:127.0.0.1:12345", queueDirectory: "/var/spool/postfix", chrooted: false)
        #expect(p.target == .inet("127.0.0.1:12345"))
        #expect(p.hostPath == nil)
    }

    @Test func relativeAndNormalizedPaths() {
        #expect(doctorRelativePath("/var/spool/postfix/private/auth", inside: "/var/spool/postfix") == "private/auth")
        #expect(doctorRelativePath("/var/spool/postfix//private/auth", inside: "/var/spool/postfix/") == "private/auth")
        #expect(doctorRelativePath("/var/spool/postfixx/auth", inside: "/var/spool/postfix") == nil)
        #expect(doctorRelativePath("/run/auth", inside: "/var/spool/postfix") == nil)
        #expect(doctorNormalizePath("/a/./b//c/../d/") == "/a/b/d")
        #expect(doctorNormalizePath("/../x") == "/x")
        #expect(doctorNormalizePath("a/b/..") == "a")
    }

    @Test func traversedDirectories() {
        #expect(
            DoctorAccess.traversedDirectories(of: "/var/spool/postfix/private/auth", chrootRoot: nil)
                == ["/", "/var", "/var/spool", "/var/spool/postfix", "/var/spool/postfix/private"])
        #expect(
            DoctorAccess.traversedDirectories(of: "/var/spool/postfix/private/auth", chrootRoot: "/var/spool/postfix")
                == ["/var/spool/postfix/private"])
    }
}

@Suite("saslgate doctor: can mail_owner connect")
struct DoctorAccessTests {
    let postfix = DoctorAccount(name: "postfix", uid: 102, gid: 105, groups: [105])
    func status(_ mode: UInt32, _ uid: UInt32, _ gid: UInt32, socket: Bool = true) -> DoctorFileStatus {
        DoctorFileStatus(mode: (socket ? 0o140000 : 0o040000) | mode, uid: uid, gid: gid)
    }

    @Test func ownerGroupOther() {
        #expect(DoctorAccess.permits(postfix, status(0o660, 102, 105), DoctorAccess.write))
        #expect(DoctorAccess.permits(postfix, status(0o060, 0, 105), DoctorAccess.write))
        #expect(!DoctorAccess.permits(postfix, status(0o600, 0, 0), DoctorAccess.write))
        #expect(DoctorAccess.permits(postfix, status(0o602, 0, 0), DoctorAccess.write))
        // The first matching class decides: the owner gets nothing even though "other" could write.
        #expect(!DoctorAccess.permits(postfix, status(0o006, 102, 0), DoctorAccess.write))
        // Supplementary groups count.
        let withMail = DoctorAccount(name: "postfix", uid: 102, gid: 105, groups: [105, 8])
        #expect(DoctorAccess.permits(withMail, status(0o660, 0, 8), DoctorAccess.write))
        // root passes.
        #expect(
            DoctorAccess.permits(
                DoctorAccount(name: "root", uid: 0, gid: 0, groups: []), status(0o000, 5, 5), DoctorAccess.write))
    }

    @Test func verdicts() {
        let dir = status(0o700, 102, 0, socket: false)
        #expect(
            DoctorAccess.connectVerdict(postfix, socket: status(0o660, 102, 105), directories: [("/q/private", dir)])
                == .allowed)
        let rootSocket = status(0o600, 0, 0)
        #expect(
            DoctorAccess.connectVerdict(postfix, socket: rootSocket, directories: [("/q/private", dir)])
                == .socketDenied(status: rootSocket))
        let closed = status(0o700, 0, 0, socket: false)
        #expect(
            DoctorAccess.connectVerdict(postfix, socket: status(0o666, 0, 0), directories: [("/run/sg", closed)])
                == .directoryDenied(path: "/run/sg", status: closed))
        #expect(rootSocket.modeString == "srw-------" && rootSocket.octal == "0600")
        #expect(status(0o755, 0, 0, socket: false).modeString == "drwxr-xr-x")
    }
}

@Suite("saslgate doctor: postconf output and unit files")
struct DoctorParsingTests {
    @Test func mainConfig() {
        let main = PostfixMainConfig.parse(
            postconfOutput:
                "smtpd_sasl_path = private/auth\nsmtpd_tls_cert_file =\npostconf: warning: bogus: unknown parameter\nmail_owner = postfix\n"
        )
        #expect(main["smtpd_sasl_path"] == "private/auth")
        #expect(main["smtpd_tls_cert_file"] == "")
        #expect(main["mail_owner"] == "postfix")
        #expect(main["bogus"] == nil)
    }

    @Test func masterServicesAndOverrides() {
        // Real `postconf -M` / `postconf -Px` output (Postfix 3.7.11).
        var services = PostfixMasterService.parse(
            postconfM: """
                smtp       inet  n       -       y       -       -       smtpd
                pickup     unix  n       -       y       60      1       pickup
                submission inet  n       -       -       -       -       smtpd -o syslog_name=postfix/submission -o smtpd_sasl_auth_enable=yes -o {smtpd_sasl_security_options=noanonymous, noplaintext}
                127.0.0.1:10025 inet n   -       n       -       -       smtpd
                """)
        PostfixMasterService.applyOverrides(
            postconfP: """
                submission/inet/smtpd_sasl_auth_enable = yes
                submission/inet/smtpd_sasl_security_options = noanonymous, noplaintext
                submission/inet/syslog_name = postfix/submission
                relay/unix/syslog_name = postfix/relay
                """, to: &services)
        #expect(services.map(\.id) == ["smtp/inet", "pickup/unix", "submission/inet", "127.0.0.1:10025/inet"])
        #expect(services.filter(\.isSMTPServer).map(\.name) == ["smtp", "submission", "127.0.0.1:10025"])
        #expect(services[0].chrootColumn == "y" && services[2].chrootColumn == "-" && services[3].chrootColumn == "n")
        #expect(services[2].overrides["smtpd_sasl_security_options"] == "noanonymous, noplaintext")
        #expect(services[0].overrides.isEmpty)
    }

    @Test func tlsPosture() {
        func posture(_ values: [String: String], exists: Bool = true) -> PostfixTLSPosture {
            PostfixTLSPosture.from({ values[$0] ?? "" }, exists: { _ in exists })
        }
        let may = posture([
            "smtpd_tls_security_level": "may", "smtpd_tls_cert_file": "/c.pem", "smtpd_tls_auth_only": "yes",
        ])
        #expect(may.tlsPossible && may.authAfterTLS && !may.authBeforeTLS)
        let noAuthOnly = posture(["smtpd_tls_security_level": "may", "smtpd_tls_chain_files": "/k.pem /c.pem"])
        #expect(noAuthOnly.tlsPossible && noAuthOnly.authBeforeTLS)
        let noCert = posture(["smtpd_tls_security_level": "may"])
        #expect(!noCert.tlsPossible && noCert.authBeforeTLS)
        #expect(
            !posture(["smtpd_tls_security_level": "may", "smtpd_tls_cert_file": "/c.pem"], exists: false).tlsPossible)
        let legacy = posture(["smtpd_use_tls": "yes", "smtpd_tls_cert_file": "/c.pem"])
        #expect(legacy.level == "may" && legacy.tlsPossible)
        #expect(posture(["smtpd_enforce_tls": "yes"]).level == "encrypt")
        // Level encrypt: no AUTH before STARTTLS (observed with Postfix 3.7.11).
        #expect(!posture(["smtpd_tls_security_level": "encrypt", "smtpd_tls_cert_file": "/c.pem"]).authBeforeTLS)
        let wrapper = posture(["smtpd_tls_wrappermode": "yes", "smtpd_tls_cert_file": "/c.pem"])
        #expect(wrapper.tlsPossible && !wrapper.authBeforeTLS)
        #expect(posture([:]).level == "none")
    }

    @Test func socketUnitWithDropIn() {
        let main = """
            [Unit]
            Description=x
            [Socket]
            ListenStream=/var/spool/postfix/private/auth
            SocketUser=postfix
            SocketMode=0660
            """
        #expect(DoctorSocketUnit.parse([main]).socketPath == "/var/spool/postfix/private/auth")
        let dropIn = "[Socket]\nListenStream=\nListenStream=/run/saslgate/auth\n"
        let unit = DoctorSocketUnit.parse([main, dropIn])
        #expect(
            unit.listenStreams == ["/run/saslgate/auth"] && unit.socketUser == "postfix" && unit.socketMode == "0660")
        let service = DoctorServiceUnit.parse([
            "[Service]\nUser=saslgate\n#SupplementaryGroups=shadow\n", "[Service]\nSupplementaryGroups=shadow\n",
        ])
        #expect(service.user == "saslgate" && service.supplementaryGroups == ["shadow"])
    }
}

/// A machine described by tables.
struct FakeDoctorEnvironment: DoctorEnvironment {
    var postconf: [String: DoctorProcessResult] = [:]
    var files: [String: String] = [:]
    var statuses: [String: DoctorFileStatus] = [:]
    var accounts: [String: DoctorAccount] = [
        "postfix": DoctorAccount(name: "postfix", uid: 102, gid: 105, groups: [105])
    ]
    var greetingResult: Result<DoctorGreeting, DoctorGreetingError> = .success(
        DoctorGreeting(major: 1, minor: 2, mechanisms: [.predicted("PLAIN"), .predicted("LOGIN")]))
    var effectiveUID: UInt32 = 0

    func run(_ arguments: [String]) -> DoctorProcessResult {
        let key = arguments.dropFirst(3).first ?? ""  // postconf -c DIR <flag>
        return postconf[key] ?? DoctorProcessResult(status: 1, output: "", errorOutput: "postconf: fatal: no \(key)")
    }
    func readFile(_ path: String) -> String? { files[path] }
    func listDirectory(_ path: String) -> [String]? {
        let prefix = path + "/"
        let names = files.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }
        return names.isEmpty ? nil : names.sorted()
    }
    func status(_ path: String) -> Result<DoctorFileStatus, DoctorSystemError> {
        if let s = statuses[path] { return .success(s) }
        return .failure(DoctorSystemError(code: 2, description: "No such file or directory"))
    }
    func account(named name: String) -> DoctorAccount? { accounts[name] }
    func userName(uid: UInt32) -> String? { [0: "root", 102: "postfix"][uid] }
    func groupName(gid: UInt32) -> String? { [0: "root", 105: "postfix"][gid] }
    func greeting(socketPath: String, timeout: Duration) -> Result<DoctorGreeting, DoctorGreetingError> {
        greetingResult
    }

    /// Debian-like: queue /var/spool/postfix, smtpd chrooted, socket 0660 postfix:postfix.
    static func debian(main: [String: String] = [:], master: String = "smtp inet n - y - - smtpd")
        -> FakeDoctorEnvironment
    {
        var values = [
            "mail_version": "3.7.11", "mail_owner": "postfix", "queue_directory": "/var/spool/postfix",
            "compatibility_level": "3.6", "smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": "private/auth", "smtpd_sasl_security_options": "noanonymous",
            "smtpd_sasl_tls_security_options": "noanonymous", "smtpd_sasl_mechanism_filter": "!external, static:rest",
            "smtpd_tls_security_level": "may", "smtpd_tls_auth_only": "yes",
            "smtpd_tls_cert_file": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
        ]
        for (k, v) in main { values[k] = v }
        var env = FakeDoctorEnvironment()
        env.postconf["-x"] = DoctorProcessResult(
            status: 0, output: values.map { "\($0.key) = \($0.value)" }.sorted().joined(separator: "\n"),
            errorOutput: "")
        env.postconf["-M"] = DoctorProcessResult(status: 0, output: master, errorOutput: "")
        env.postconf["-Px"] = DoctorProcessResult(status: 0, output: "", errorOutput: "")
        env.statuses = [
            "/var/spool/postfix/private/auth": DoctorFileStatus(mode: 0o140660, uid: 102, gid: 105),
            "/var/spool/postfix/private": DoctorFileStatus(mode: 0o040700, uid: 102, gid: 0),
            "/var/spool/postfix": DoctorFileStatus(mode: 0o040755, uid: 0, gid: 0),
            "/var/spool": DoctorFileStatus(mode: 0o040755, uid: 0, gid: 0),
            "/var": DoctorFileStatus(mode: 0o040755, uid: 0, gid: 0),
            "/": DoctorFileStatus(mode: 0o040755, uid: 0, gid: 0),
            "/etc/ssl/certs/ssl-cert-snakeoil.pem": DoctorFileStatus(mode: 0o100644, uid: 0, gid: 0),
        ]
        return env
    }
}

@Suite("saslgate doctor: the whole check on a described machine")
struct DoctorCheckerTests {
    func run(_ env: FakeDoctorEnvironment, settings: Settings = Settings()) -> DoctorReport {
        DoctorChecker(environment: env, configPath: "/etc/saslgate/saslgated.conf", daemonConfig: .success(settings))
            .run()
    }

    func fails(_ r: DoctorReport) -> [String] { r.lines.filter { $0.hasPrefix("FAIL:") } }

    @Test func rightConfiguration() {
        let r = run(.debian())
        #expect(!r.failed, "\(r.lines)")
        #expect(r.warnings == 0, "\(r.lines)")
        #expect(
            r.lines.contains {
                $0.hasPrefix(
                    "ok: Postfix connects to /var/spool/postfix/private/auth (smtpd_sasl_path = private/auth, relative to queue_directory; smtpd chrooted in /var/spool/postfix: master.cf chroot column y)"
                )
            })
        #expect(r.mainCF.contains("smtpd_sasl_path = private/auth"))
        #expect(r.output.last == "    postfix reload")
    }

    @Test func absolutePathWithChrootedSmtpd() {
        let r = run(.debian(main: ["smtpd_sasl_path": "/var/spool/postfix/private/auth"]))
        #expect(r.failed)
        #expect(
            fails(r).contains {
                $0.contains("is absolute, but smtpd chrooted in /var/spool/postfix")
                    && $0.contains("fix: postconf -e 'smtpd_sasl_path = private/auth'")
            })
    }

    @Test func cyrusAndAuthOff() {
        let r = run(.debian(main: ["smtpd_sasl_type": "cyrus", "smtpd_sasl_auth_enable": "no"]))
        #expect(fails(r).contains { $0.hasPrefix("FAIL: smtpd_sasl_auth_enable = no") })
        #expect(fails(r).contains { $0.hasPrefix("FAIL: smtpd_sasl_type = cyrus") })
    }

    @Test func noplaintextIsFatalForPostfix() {
        let r = run(
            .debian(main: [
                "smtpd_sasl_security_options": "noplaintext", "smtpd_sasl_tls_security_options": "noplaintext",
            ]))
        #expect(
            fails(r).contains {
                $0.contains("after STARTTLS no mechanism survives smtpd_sasl_tls_security_options = noplaintext")
            })
        #expect(r.mainCF.contains("smtpd_sasl_tls_security_options = $smtpd_sasl_security_options"))
    }

    @Test func socketOnlyRootMayUse() {
        var env = FakeDoctorEnvironment.debian()
        env.statuses["/var/spool/postfix/private/auth"] = DoctorFileStatus(mode: 0o140600, uid: 0, gid: 0)
        let r = run(env)
        #expect(
            fails(r).contains {
                $0.contains("may not connect to /var/spool/postfix/private/auth (srw------- root:root")
            })
    }

    @Test func noTLSWithCleartextRequiresTLS() {
        let r = run(
            .debian(main: ["smtpd_tls_security_level": "", "smtpd_tls_cert_file": "", "smtpd_tls_auth_only": "no"]))
        #expect(fails(r).contains { $0.contains("nobody can log in") })
        var lax = Settings()
        lax.cleartextRequiresTLS = false
        let r2 = run(
            .debian(main: ["smtpd_tls_security_level": "", "smtpd_tls_cert_file": "", "smtpd_tls_auth_only": "no"]),
            settings: lax)
        #expect(!r2.failed && r2.warnings == 1, "\(r2.lines)")
    }

    @Test func authOnlyWithoutTLSNeverOffersAuth() {
        let r = run(.debian(main: ["smtpd_tls_cert_file": ""]))
        #expect(fails(r).contains { $0.contains("smtpd_tls_auth_only = yes: Postfix never offers AUTH") })
    }

    /// Services with the same findings are reported once, named together; one that differs (here not
    /// chrooted) gets lines of its own.
    @Test func servicesWithTheSameFindingsAreReportedTogether() {
        let r = run(
            .debian(
                master:
                    "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\n127.0.0.1:2525 inet n - n - - smtpd"))
        #expect(!r.failed, "\(r.lines)")
        #expect(
            r.lines.filter { $0.contains("smtpd_sasl_type = dovecot") } == [
                "ok: smtp/inet, submission/inet: smtpd_sasl_type = dovecot",
                "ok: 127.0.0.1:2525/inet: smtpd_sasl_type = dovecot",
            ])
        #expect(
            r.lines.contains {
                $0.hasPrefix("ok: 127.0.0.1:2525/inet: Postfix connects to /var/spool/postfix/private/auth")
                    && $0.contains("smtpd not chrooted: master.cf chroot column n")
            })
    }

    @Test func masterOverridesArePerService() {
        var env = FakeDoctorEnvironment.debian(
            main: ["smtpd_sasl_auth_enable": "no"],
            master:
                "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_sasl_path=/private/auth"
        )
        env.postconf["-Px"] = DoctorProcessResult(
            status: 0,
            output: "submission/inet/smtpd_sasl_auth_enable = yes\nsubmission/inet/smtpd_sasl_path = /private/auth\n",
            errorOutput: "")
        let r = run(env)
        #expect(r.lines.contains("ok: smtpd_sasl_auth_enable = yes for submission/inet (master.cf -o; main.cf: no)"))
        // The fix edits master.cf, where the value comes from.
        #expect(fails(r).contains { $0.contains("fix: postconf -P 'submission/inet/smtpd_sasl_path=private/auth'") })
    }

    @Test func systemdSocketUnitDecidesWhereTheDaemonListens() {
        var env = FakeDoctorEnvironment.debian()
        env.files["/etc/systemd/system/saslgated.socket"] = "[Socket]\nListenStream=/run/saslgate/auth\n"
        let r = run(env)
        #expect(
            r.lines.contains {
                $0.hasPrefix(
                    "warning: /etc/systemd/system/saslgated.socket has ListenStream=/run/saslgate/auth but listen")
            })
        #expect(
            fails(r).contains {
                $0.contains("but saslgated listens on /run/saslgate/auth (ListenStream= of saslgated.socket)")
            })
        #expect(r.mainCF.contains("smtpd_sasl_path = /run/saslgate/auth"))
    }

    @Test func pamWithoutShadowGroupIsAWarning() throws {
        var env = FakeDoctorEnvironment.debian()
        env.files["/etc/systemd/system/saslgated.socket"] = "[Socket]\nListenStream=/var/spool/postfix/private/auth\n"
        env.files["/etc/systemd/system/saslgated.service"] = "[Service]\nUser=saslgate\n"
        var settings = Settings()
        settings.passdbs = [PassdbSpec(driver: "pam", argument: "smtp", line: 1)]
        let r = run(env, settings: settings)
        #expect(
            r.lines.contains {
                $0.hasPrefix(
                    "warning: passdbs uses pam: but saslgated.service runs as saslgate without SupplementaryGroups=shadow"
                )
            })
    }

    /// doctor expects the groups the daemon adds for its passdbs (one function decides for both).
    @Test func pamWithShadowGroupIsFine() throws {
        var env = FakeDoctorEnvironment.debian()
        env.files["/etc/systemd/system/saslgated.socket"] = "[Socket]\nListenStream=/var/spool/postfix/private/auth\n"
        env.files["/etc/systemd/system/saslgated.service"] = "[Service]\nUser=saslgate\nSupplementaryGroups=shadow\n"
        var settings = Settings()
        settings.passdbs = [PassdbSpec(driver: "pam", argument: "smtp", line: 1)]
        let r = run(env, settings: settings)
        #expect(r.lines.contains("ok: saslgated.service can serve pam: (group shadow for pam_unix)"))
        #expect(!r.lines.contains { $0.contains("SupplementaryGroups") })
        // Without a passdb that needs a group nothing is said about groups.
        let plain = run(env)
        #expect(!plain.lines.contains { $0.contains("group shadow") })
    }

    /// The shipped unit is Unix-only; a TCP endpoint or a network passdb needs the shipped drop-in.
    @Test func networkNeedsTheDropIn() throws {
        let root = #filePath.components(separatedBy: "/Tests/")[0]
        let unit = try String(contentsOfFile: root + "/systemd/saslgated.service", encoding: .utf8)
        let dropIn = try String(contentsOfFile: root + "/systemd/dropins/network.conf", encoding: .utf8)
        var env = FakeDoctorEnvironment.debian()
        env.files["/etc/systemd/system/saslgated.socket"] = "[Socket]\nListenStream=/var/spool/postfix/private/auth\n"
        env.files["/etc/systemd/system/saslgated.service"] = unit
        var settings = Settings()
        settings.passdbs = [PassdbSpec(driver: "ldap", argument: "/etc/saslgate/ldap.conf", line: 1)]
        let blocked = run(env, settings: settings)
        #expect(fails(blocked).contains {
            $0.hasPrefix("FAIL: passdb ldap:/etc/saslgate/ldap.conf needs IP networking, but saslgated.service has PrivateNetwork=yes, RestrictAddressFamilies=AF_UNIX, IPAddressDeny=any")
        })
        env.files["/etc/systemd/system/saslgated.service.d/network.conf"] = dropIn
        let allowed = run(env, settings: settings)
        #expect(allowed.lines.contains("ok: saslgated.service may use the network, needed by passdb ldap:/etc/saslgate/ldap.conf"))
        #expect(!fails(allowed).contains { $0.contains("IP networking") })
        // Unix sockets and files only: nothing to say.
        env.files["/etc/systemd/system/saslgated.service.d/network.conf"] = nil
        #expect(!run(env).lines.contains { $0.contains("network") })
    }

    @Test func postfixNotConfigured() {
        var env = FakeDoctorEnvironment.debian()
        env.postconf = [:]
        let r = run(env)
        #expect(fails(r).contains { $0.hasPrefix("FAIL: cannot read Postfix's configuration in /etc/postfix") })
        // The daemon side is still looked at.
        #expect(r.lines.contains { $0.contains("answers like Dovecot's auth-client socket") })
    }
}

@Suite("saslgate doctor: TCP endpoints")
struct DoctorInetTests {
    func settings(_ text: String) throws -> Settings {
        try ConfigLookup.parse(text, path: "/etc/saslgate/saslgated.conf").settings
    }

    func run(_ env: FakeDoctorEnvironment, _ settings: Settings) -> DoctorReport {
        DoctorChecker(environment: env, configPath: "/etc/saslgate/saslgated.conf", daemonConfig: .success(settings))
            .run()
    }

    /// A Postfix that connects over TCP to an endpoint of listen: the path check passes, the endpoint is
    /// reported with the private-network warning, and the Unix socket is still checked.
    @Test func postfixOverTCPToAListedEndpoint() throws {
        let s = try settings("listen = /var/spool/postfix/private/auth inet:10.0.0.5:12345\ninet_clients = 10.0.0.0/24\n")
        let r = run(.debian(main: ["smtpd_sasl_path": "inet:10.0.0.5:12345"]), s)
        #expect(!r.failed, "\(r.lines)")
        #expect(r.lines.contains { $0.hasPrefix("ok: Postfix connects over TCP to 10.0.0.5:12345 (smtpd_sasl_path = inet:10.0.0.5:12345), where saslgated listens") }, "\(r.lines)")
        #expect(r.lines.contains {
            $0.hasPrefix("warning: saslgated listens on inet:10.0.0.5:12345 in plain TCP")
                && $0.contains("inet_clients = 10.0.0.0/24")
        }, "\(r.lines)")
        // The endpoint Postfix uses is the one probed for its greeting; there is no file to check.
        #expect(r.lines.contains { $0.hasPrefix("ok: inet:10.0.0.5:12345 answers like Dovecot's auth-client socket") }, "\(r.lines)")
    }

    /// listen with TCP endpoints only: nothing about a missing socket file.
    @Test func tcpOnly() throws {
        let s = try settings("listen = inet:10.0.0.5:12345\ninet_clients = 10.0.0.7\n")
        let r = run(.debian(main: ["smtpd_sasl_path": "inet:10.0.0.5:12345"]), s)
        #expect(!r.failed, "\(r.lines)")
        #expect(!r.lines.contains { $0.contains("does not exist") }, "\(r.lines)")
        #expect(r.lines.contains { $0.hasPrefix("ok: inet:10.0.0.5:12345 answers like Dovecot's auth-client socket") }, "\(r.lines)")
    }

    @Test func postfixOverTCPToAnUnlistedEndpoint() throws {
        let s = try settings("listen = /var/spool/postfix/private/auth inet:[::1]:12345\n")
        let r = run(.debian(main: ["smtpd_sasl_path": "inet:127.0.0.1:12345"]), s)
        #expect(r.lines.contains {
            $0.hasPrefix("FAIL: smtpd_sasl_path = inet:127.0.0.1:12345 makes Postfix connect over TCP to 127.0.0.1:12345, but saslgated listens on inet:[::1]:12345")
                && $0.contains("or add inet:127.0.0.1:12345 to listen")
        }, "\(r.lines)")
        // The same address in IPv6 brackets, as Postfix writes it, is found.
        let v6 = run(.debian(main: ["smtpd_sasl_path": "inet:[::1]:12345"]), s)
        #expect(v6.lines.contains { $0.hasPrefix("ok: Postfix connects over TCP to [::1]:12345") }, "\(v6.lines)")
    }

    @Test func aTLSEndpointIsReportedAsForTLSClients() throws {
        let s = try settings("listen = /var/spool/postfix/private/auth inet:10.0.0.5:12345\ninet_tls_cert = /c.pem\ninet_tls_key = /k.pem\n")
        let r = run(.debian(), s)
        #expect(!r.failed, "\(r.lines)")
        #expect(r.lines.contains { $0.hasPrefix("ok: saslgated listens on inet:10.0.0.5:12345 with TLS") && $0.contains("Postfix cannot speak TLS to an auth server") }, "\(r.lines)")
    }
}
