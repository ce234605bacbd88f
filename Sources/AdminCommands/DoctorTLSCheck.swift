import AuthEngine
/// Do passwords travel only over TLS, and can anybody log in at all: smtpd's TLS posture against the
/// daemon's `cleartext_requires_tls` and the plaintext mechanisms on offer.
struct TLSPolicyCheck {
    let postconf: PostconfFix
    let cleartextRequiresTLS: Bool

    /// The reason saslgated gives when it refuses PLAIN or LOGIN without TLS (Postfix shows it to the client).
    static let daemonReason = ClientReason.cleartextNeedsTLS

    func run(_ service: SMTPDService, tls: PostfixTLSPosture, mechanisms: [DoctorMechanism]) -> DoctorFinding {
        tls.tlsPossible
            ? withTLS(service, tls: tls, mechanisms: mechanisms)
            : withoutTLS(service, tls: tls, mechanisms: mechanisms)
    }

    private func withoutTLS(_ service: SMTPDService, tls: PostfixTLSPosture, mechanisms: [DoctorMechanism]) -> DoctorFinding {
        let plaintextOnly = !mechanisms.isEmpty && mechanisms.allSatisfy(\.isPlaintext)
        let plaintextNames = mechanisms.filter(\.isPlaintext).map(\.name)
        let certificateFix =
            "give smtpd a certificate: \(postconf.setAll(MainCFAdvice.snakeoilCertificate)) (or your own certificate)"
            + (service.isOverridden("smtpd_tls_security_level")
                ? " and drop -o smtpd_tls_security_level from \(service.master?.id ?? "the service") in master.cf" : "")
        var why: [String] = []
        if !tls.wrapperMode && tls.level == "none" {
            let level = service.value("smtpd_tls_security_level")
            why.append("smtpd_tls_security_level = \(level.isEmpty ? "(empty)" : level)")
        }
        if tls.certificates.isEmpty { why.append("no certificate (smtpd_tls_cert_file / smtpd_tls_chain_files)") }
        if !tls.missingCertificates.isEmpty {
            why.append("missing certificate file \(tls.missingCertificates.joined(separator: ", "))")
        }
        let noTLS = "smtpd cannot do TLS (\(why.joined(separator: ", ")))"
        if !tls.authBeforeTLS {
            return .fail(
                "\(noTLS) and \(tls.authOnly ? "smtpd_tls_auth_only = yes" : "TLS is required first"): Postfix never offers AUTH",
                fix: certificateFix)
        }
        if cleartextRequiresTLS && plaintextOnly {
            return .fail(
                "\(noTLS) and saslgated has cleartext_requires_tls = yes with only \(plaintextNames.joined(separator: "/")): every login is refused ('\(TLSPolicyCheck.daemonReason)'), nobody can log in",
                fix: certificateFix + ", then " + postconf.set("smtpd_tls_auth_only", "yes", for: service))
        }
        if cleartextRequiresTLS && !plaintextNames.isEmpty {
            return .warning(
                "\(noTLS): with cleartext_requires_tls = yes saslgated refuses \(plaintextNames.joined(separator: "/")); only \(mechanisms.filter { !$0.isPlaintext }.map(\.name).joined(separator: " ")) can work",
                fix: certificateFix)
        }
        if !plaintextNames.isEmpty {
            return .warning(
                "\(noTLS) and cleartext_requires_tls = no: passwords cross the network in cleartext (\(plaintextNames.joined(separator: "/")))",
                fix: certificateFix + ", then " + postconf.set("smtpd_tls_auth_only", "yes", for: service))
        }
        return .warning("\(noTLS): SMTP sessions, and what they carry, are not encrypted", fix: certificateFix)
    }

    private func withTLS(_ service: SMTPDService, tls: PostfixTLSPosture, mechanisms: [DoctorMechanism]) -> DoctorFinding {
        let securityBefore = PostfixSASLSecurityOptions(service.value(SecurityOptionsParameter.beforeTLS.rawValue))
        let offeredBefore = tls.authBeforeTLS ? securityBefore.filter(mechanisms).filter(\.isPlaintext).map(\.name) : []
        if !offeredBefore.isEmpty {
            if cleartextRequiresTLS {
                return .warning(
                    "smtpd_tls_auth_only = no: Postfix offers \(offeredBefore.joined(separator: " ")) before STARTTLS, and clients that use them there get '535 5.7.8 Error: authentication failed: \(TLSPolicyCheck.daemonReason)' from saslgated (cleartext_requires_tls = yes)",
                    fix: postconf.set("smtpd_tls_auth_only", "yes", for: service))
            }
            return .warning(
                "smtpd_tls_auth_only = no and cleartext_requires_tls = no: \(offeredBefore.joined(separator: "/")) passwords may cross the network in cleartext before STARTTLS",
                fix: postconf.set("smtpd_tls_auth_only", "yes", for: service))
        }
        let mode =
            tls.wrapperMode
            ? "smtpd_tls_wrappermode = yes"
            : "smtpd_tls_security_level = \(tls.level), \(tls.authOnly ? "smtpd_tls_auth_only = yes" : "STARTTLS required")"
        return .ok("TLS: \(mode), \(tls.certificates.first ?? ""): passwords only travel over TLS (Postfix sends 'secured')")
    }
}
