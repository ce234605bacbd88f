/// The `postconf` commands that `saslgate doctor` tells the admin to run, for the Postfix configuration
/// directory it checks (`-c DIR` is written only for a directory other than the default).
struct PostconfFix {
    let postfixDirectory: String

    /// ` -c DIR`, or nothing for the default directory.
    var directoryOption: String {
        postfixDirectory == DoctorChecker.defaultPostfixDirectory ? "" : " -c \(postfixDirectory)"
    }

    /// `postconf -e 'name = value'` (main.cf).
    func set(_ name: String, _ value: String) -> String {
        "postconf\(directoryOption) -e '\(name) = \(value)'"
    }

    /// The same for one smtpd: where master.cf overrides the parameter for that service, the fix has to
    /// change the override (`postconf -P`), or it would change nothing.
    func set(_ name: String, _ value: String, for service: SMTPDService) -> String {
        if let master = service.master, service.isOverridden(name) {
            return
                "postconf\(directoryOption) -P '\(master.id)/\(name)=\(value)' (master.cf -o overrides main.cf for \(master.id))"
        }
        return set(name, value)
    }

    /// One `postconf -e` for several whole `name = value` lines.
    func setAll(_ lines: [String]) -> String {
        "postconf\(directoryOption) -e " + lines.map { "'\($0)'" }.joined(separator: " ")
    }

    var reload: String { "postfix\(directoryOption) reload" }
}

/// The main.cf lines printed at the end of the report: always what connects Postfix to saslgated and
/// keeps passwords under TLS, plus the repairs that some check found necessary.
struct MainCFAdvice {
    /// Security options that leave Postfix no mechanism, or that it cannot parse.
    var brokenSecurityOptions: Set<SecurityOptionsParameter> = []
    /// Some smtpd cannot do TLS at all.
    var needsCertificate = false

    /// Debian's self-signed certificate, enough to make STARTTLS possible.
    static let snakeoilCertificate = [
        "smtpd_tls_security_level = may",
        "smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem",
        "smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key",
    ]

    func lines(socketPath: String, queueDirectory: String) -> [String] {
        var lines = [
            "smtpd_sasl_auth_enable = yes",
            "smtpd_sasl_type = dovecot",
        ]
        if let relative = doctorRelativePath(socketPath, inside: queueDirectory) {
            lines.append("smtpd_sasl_path = \(relative)")
        } else {
            // Only an smtpd that is not chrooted reaches a socket outside queue_directory.
            lines.append("smtpd_sasl_path = \(socketPath)")
        }
        if brokenSecurityOptions.contains(.beforeTLS) {
            lines.append("smtpd_sasl_security_options = noanonymous")
        }
        if brokenSecurityOptions.contains(.afterTLS) {
            lines.append("smtpd_sasl_tls_security_options = $smtpd_sasl_security_options")
        }
        if needsCertificate { lines += MainCFAdvice.snakeoilCertificate }
        lines += [
            "smtpd_tls_auth_only = yes",
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        ]
        return lines
    }

    /// Puts the lines, and the commands that set them, into the report.
    func write(to report: inout DoctorReport, socketPath: String, queueDirectory: String, postconf: PostconfFix) {
        report.mainCF = lines(socketPath: socketPath, queueDirectory: queueDirectory)
        report.postconfCommand = postconf.setAll(report.mainCF)
        report.reloadCommand = postconf.reload
    }
}
