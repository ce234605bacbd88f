/// One smtpd as Postfix runs it: a master.cf service with its `-o` overrides over main.cf, or main.cf
/// alone when master.cf could not be read or runs no smtpd.
struct SMTPDService {
    var master: PostfixMasterService?
    var main: PostfixMainConfig

    /// The parameter's value for this smtpd ("" when unset).
    func value(_ name: String) -> String { master?.overrides[name] ?? main[name] ?? "" }
    func isOverridden(_ name: String) -> Bool { master?.overrides[name] != nil }
    /// False for a parameter this Postfix does not know (postconf printed nothing for it).
    func has(_ name: String) -> Bool { master?.overrides[name] != nil || main[name] != nil }
}

/// What the checks need to know about Postfix.
struct PostfixSetup {
    var findings: [DoctorFinding]
    /// `mail_owner`, the account smtpd connects as; nil when it does not exist.
    var account: DoctorAccount?
    var queueDirectory: String
    /// Decides what master.cf's `-` in the chroot column means.
    var compatibilityLevel: String
    /// The smtpd services to check; nil when Postfix's configuration could not be read.
    var services: [SMTPDService]?
}

/// Reads Postfix's configuration with postconf: main.cf, `mail_owner`, the smtpd services of master.cf
/// with their overrides, and which of them have SASL switched on (those are the ones checked further).
struct PostfixSetupCheck {
    let environment: any DoctorEnvironment
    let postconf: PostconfFix

    static let defaultQueueDirectory = "/var/spool/postfix"
    static let defaultMailOwner = "postfix"
    /// Postfix's own default for an unset `compatibility_level`.
    static let defaultCompatibilityLevel = "0"

    /// main.cf parameters the checks read.
    static let parameters =
        [
            "mail_version", "mail_owner", "queue_directory", "compatibility_level",
            "smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path",
            "smtpd_sasl_security_options", "smtpd_sasl_tls_security_options", "smtpd_sasl_mechanism_filter",
            "smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls", "smtpd_tls_auth_only",
            "smtpd_tls_wrappermode",
        ] + PostfixTLSPosture.certificateParameters

    func run() -> PostfixSetup {
        let directory = postconf.postfixDirectory
        let mainResult = environment.run(["postconf", "-c", directory, "-x"] + PostfixSetupCheck.parameters)
        guard mainResult.status == 0 else {
            var findings: [DoctorFinding] = [
                .fail(
                    "cannot read Postfix's configuration in \(directory): \(mainResult.lastError)",
                    fix:
                        "install and configure Postfix (apt-get install postfix), or give its directory with --postfix-config DIR"
                )
            ]
            let account = mailOwner(PostfixSetupCheck.defaultMailOwner, &findings)
            return PostfixSetup(
                findings: findings, account: account, queueDirectory: PostfixSetupCheck.defaultQueueDirectory,
                compatibilityLevel: PostfixSetupCheck.defaultCompatibilityLevel, services: nil)
        }
        let main = PostfixMainConfig.parse(postconfOutput: mainResult.output)
        let queueDirectory = nonEmpty(main["queue_directory"]) ?? PostfixSetupCheck.defaultQueueDirectory
        let compatibility = nonEmpty(main["compatibility_level"]) ?? PostfixSetupCheck.defaultCompatibilityLevel
        var findings: [DoctorFinding] = [
            .ok(
                "Postfix\(main["mail_version"].map { " \($0)" } ?? "") configuration in \(directory): queue_directory = \(queueDirectory), mail_owner = \(main["mail_owner"] ?? PostfixSetupCheck.defaultMailOwner), compatibility_level = \(compatibility)"
            )
        ]
        let account = mailOwner(nonEmpty(main["mail_owner"]) ?? PostfixSetupCheck.defaultMailOwner, &findings)
        let services = saslEnabled(smtpdServices(main, &findings), main, &findings)
        return PostfixSetup(
            findings: findings, account: account, queueDirectory: queueDirectory, compatibilityLevel: compatibility,
            services: services)
    }

    private func mailOwner(_ name: String, _ findings: inout [DoctorFinding]) -> DoctorAccount? {
        guard let account = environment.account(named: name) else {
            findings.append(
                .fail(
                    "mail_owner \(name) is not a user on this system: Postfix cannot run",
                    fix: "create it (apt-get install postfix does) or correct mail_owner"))
            return nil
        }
        return account
    }

    /// The smtpd services of master.cf; main.cf alone when there is none to be found.
    private func smtpdServices(_ main: PostfixMainConfig, _ findings: inout [DoctorFinding]) -> [SMTPDService] {
        let directory = postconf.postfixDirectory
        var services: [PostfixMasterService] = []
        let masterResult = environment.run(["postconf", "-c", directory, "-M"])
        if masterResult.status == 0 {
            services = PostfixMasterService.parse(postconfM: masterResult.output)
            let overrides = environment.run(["postconf", "-c", directory, "-Px"])
            if overrides.status == 0 { PostfixMasterService.applyOverrides(postconfP: overrides.output, to: &services) }
        } else {
            findings.append(
                .warning(
                    "cannot read master.cf in \(directory) (\(masterResult.lastError)); assuming one smtpd that is not chrooted",
                    fix: "check \(directory)/master.cf (postconf -c \(directory) -M)"))
        }
        let smtpd = services.filter(\.isSMTPServer).map { SMTPDService(master: $0, main: main) }
        guard smtpd.isEmpty else { return smtpd }
        if masterResult.status == 0 {
            findings.append(
                .warning(
                    "master.cf in \(directory) runs no smtpd: Postfix does not accept SMTP connections at all",
                    fix: "add an smtpd service, e.g. 'smtp inet n - y - - smtpd' (Debian's default)"))
        }
        return [SMTPDService(master: nil, main: main)]
    }

    /// `smtpd_sasl_auth_enable`, in main.cf or as `-o` per service: the services that offer AUTH, or all
    /// of them when none does (then what would go wrong once it is switched on is shown too).
    private func saslEnabled(
        _ services: [SMTPDService], _ main: PostfixMainConfig, _ findings: inout [DoctorFinding]
    ) -> [SMTPDService] {
        let enabled = services.filter { doctorIsYes($0.value("smtpd_sasl_auth_enable")) }
        if doctorIsYes(main["smtpd_sasl_auth_enable"] ?? "") {
            let off = services.filter { !doctorIsYes($0.value("smtpd_sasl_auth_enable")) }.compactMap(\.master?.id)
            findings.append(
                .ok(
                    "smtpd_sasl_auth_enable = yes"
                        + (off.isEmpty ? "" : " (master.cf switches it off for \(off.joined(separator: ", ")))")))
        } else if !enabled.isEmpty {
            findings.append(
                .ok(
                    "smtpd_sasl_auth_enable = yes for \(enabled.compactMap(\.master?.id).joined(separator: ", ")) (master.cf -o; main.cf: no)"
                ))
        } else {
            findings.append(
                .fail(
                    "smtpd_sasl_auth_enable = no: Postfix offers no AUTH at all and never asks saslgated",
                    fix: postconf.set("smtpd_sasl_auth_enable", "yes")))
        }
        return enabled.isEmpty ? services : enabled
    }

    private func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.isEmpty else { return nil }
        return s
    }
}
