import AuthConfig
import AuthCore
import Foundation
import Passdb
import Testing

@testable import PassdbLDAP

/// The settings file: Dovecot's key names, defaults, and `file:line` errors that say what to write.
@Suite struct LDAPSettingsTests {
    let file = "/etc/saslgate/ldap.conf"

    func errors(_ text: String) -> String {
        do {
            _ = try LDAPSettings.parse(text: text, file: file)
            return "(no error)"
        } catch {
            return error.description
        }
    }

    @Test func minimalFileTakesDovecotsDefaults() throws {
        let s = try LDAPSettings.parse(text: "uris = ldap://127.0.0.1:3890\nbase = dc=example,dc=org\n", file: file)
        #expect(s.uris == ["ldap://127.0.0.1:3890"])
        #expect(s.scope == .subtree && s.deref == .never && !s.referrals && !s.startTLS && s.requireCert == .hard)
        #expect(s.timeout == .seconds(5) && !s.authBind && s.bindDN == nil)
        #expect(s.passFilter.text == "(&(objectClass=posixAccount)(uid=%u))")
        #expect(s.passwordAttribute == "userPassword" && s.userAttribute == "uid" && s.defaultPassScheme == .crypt)
        #expect(s.maxConnections == 8 && s.maxQueue == 256)
    }

    @Test func fullFile() throws {
        let s = try LDAPSettings.parse(text: """
            uris = ldap://ldap1 ldaps://ldap2
            tls = yes
            tls_require_cert = demand
            dn = cn=saslgate,dc=example,dc=org
            dnpass = s3cret
            base = ou=people,dc=example,dc=org
            scope = onelevel
            deref = always
            referrals = no
            timeout = 500ms
            auth_bind = yes
            auth_bind_userdn = uid=%n,ou=people,dc=example,dc=org
            pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))
            pass_attrs = mail=user, userPassword=password, homeDirectory=userdb_home
            default_pass_scheme = SSHA
            user_filter = (uid=%n)
            """, file: file)
        #expect(s.uris == ["ldap://ldap1", "ldaps://ldap2"] && s.startTLS && s.requireCert == .demand)
        #expect(s.bindDN == "cn=saslgate,dc=example,dc=org" && s.bindPassword?.constantTimeEquals(Array("s3cret".utf8)) == true)
        #expect(s.scope == .onelevel && s.deref == .always && s.timeout == .milliseconds(500) && s.authBind)
        #expect(s.authBindUserDN?.text == "uid=%n,ou=people,dc=example,dc=org")
        #expect(s.userAttribute == "mail" && s.passwordAttribute == "userPassword" && s.defaultPassScheme == .ssha)
    }

    @Test func mistakesNameTheLineAndTheFix() {
        #expect(errors("base = dc=x") == "\(file): 'uris' is not set; add 'uris = ...' (LDAP servers tried in order, e.g. ldap://ldap1 ldaps://ldap2)")
        #expect(errors("uris = http://x\nbase = dc=x") == "\(file):1: uris: 'http://x' is not an ldap://, ldaps:// or ldapi:// URI")
        #expect(errors("uris = ldap://x\nbase = dc=x\nscope = sub") == "\(file):3: scope: 'sub' is not one of base|onelevel|subtree")
        #expect(errors("uris = ldap://x\nbase = dc=x\ntimeout = 10s").hasPrefix("\(file):3: timeout: '10s' is not a duration from 10ms to 9s"))
        #expect(errors("uris = ldap://x\nbase = dc=x\nhosts = ldap1").hasPrefix("\(file):3: hosts: not supported; write uris = ldap://HOST"))
        #expect(errors("uris = ldap://x\nbase = dc=x\ndn = cn=a").hasPrefix("\(file):3: dn: a service account needs its password"))
        #expect(errors("uris = ldap://x\nbase = dc=x\npass_filter = (mail=%w)").hasPrefix("\(file):3: pass_filter: the password (%w, %{password}) cannot be used"))
        #expect(errors("uris = ldap://x\nbase = dc=x\npass_filter = mail=%u") == "\(file):3: pass_filter: a filter is written in parentheses, e.g. (&(objectClass=inetOrgPerson)(mail=%u))")
        #expect(errors("uris = ldap://x\nbase = dc=x\nauth_bind_userdn = uid=%n") == "\(file):3: auth_bind_userdn: only used with auth_bind = yes; set auth_bind = yes or remove it")
        #expect(errors("uris = ldap://x\nbase = dc=x\npass_attrs = uid=user") == "\(file):3: pass_attrs: with auth_bind = no, name the attribute holding the password, e.g. userPassword=password")
        #expect(errors("uris = ldap://x\nbase = dc=x\npass_attrs = userPassword=password, x=allow_nets").hasPrefix("\(file):3: pass_attrs: field 'allow_nets' is not supported"))
        #expect(errors("uris = ldap://x\nbase = dc=x\ndefault_pass_scheme = ROT13").hasPrefix("\(file):3: default_pass_scheme: unknown scheme 'ROT13'"))
        #expect(errors("uris = ldap://x\nbase = dc=x\ncolour = blue").hasPrefix("\(file):3: unknown key 'colour'; known: uris, hosts,"))
    }

    @Test func dnpassFileMustBePrivate() throws {
        let dir = NSTemporaryDirectory() + "ldapconf-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/dnpass"
        try "from-file\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let base = "uris = ldap://x\nbase = dc=x\ndn = cn=a\ndnpass_file = \(path)\n"
        let s = try LDAPSettings.parse(text: base, file: file)
        #expect(s.bindPassword?.constantTimeEquals(Array("from-file".utf8)) == true)
        chmod(path, 0o644)
        #expect(errors(base) == "\(file):4: dnpass_file: \(path) may be read by others; chmod 0640 \(path)")
        chmod(path, 0o600)
        #expect(errors(base + "dnpass = x\n") == "\(file):4: dnpass_file: set either dnpass or dnpass_file, not both")
    }

    @Test func durations() {
        #expect(LDAPSettings.duration("5") == .seconds(5))
        #expect(LDAPSettings.duration("250ms") == .milliseconds(250))
        #expect(LDAPSettings.duration("9s") == .seconds(9))
        #expect(LDAPSettings.duration("9.5s") == nil && LDAPSettings.duration("5ms") == nil && LDAPSettings.duration("x") == nil)
    }

    /// A bare name gets default_realm in %u; the password is never sent, %d is the realm.
    @Test func filterForABareName() throws {
        let s = try LDAPSettings.parse(text: "uris = ldap://x\nbase = dc=x\npass_filter = (&(mail=%u)(dc=%d)(uid=%n))\n", file: file)
        let db = LDAPPassdb(settings: s, defaultRealm: "Example.ORG", executor: InlineExecutor(), logger: .init(label: "t"))
        let bare = PassdbRequest(user: "bob", mechanism: "PLAIN", service: "smtp")
        #expect(db.filter(for: bare) == "(&(mail=bob@example.org)(dc=example.org)(uid=bob))")
        let quoted = PassdbRequest(user: "o'neil*@example.net", mechanism: "PLAIN", service: "smtp")
        #expect(db.filter(for: quoted) == "(&(mail=o'neil\\2a@example.net)(dc=example.net)(uid=o'neil\\2a))")
    }
}

/// The shipped example and OpenLDAP's own hash formats.
@Suite struct LDAPExampleAndSchemesTests {
    static let root = #filePath.components(separatedBy: "/Tests/")[0]

    @Test func theExampleFileParses() throws {
        let s = try LDAPSettings.load(path: Self.root + "/conf/ldap.conf")
        #expect(s.uris == ["ldap://ldap1.example.org", "ldap://ldap2.example.org"] && s.startTLS && s.authBind)
        #expect(s.passFilter.text == "(&(objectClass=inetOrgPerson)(mail=%u))")
    }

    /// Values made by slappasswd 2.5 (`-s` and `-h {SHA}`).
    @Test func slappasswdHashesVerify() throws {
        let ssha = try StoredPassword(field: "{SSHA}Z4ubUYUip79Bxorr3zQfOFG3Vjen/q8X")
        #expect(ssha.verify(Secret("Alice-ssha.1"), user: "alice") == .match)
        #expect(ssha.verify(Secret("Alice-ssha.2"), user: "alice") == .mismatch)
        let sha = try StoredPassword(field: "{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=")
        #expect(sha.verify(Secret("test"), user: "x") == .match)
        #expect(sha.verify(Secret("tesT"), user: "x") == .mismatch)
        #expect(throws: PasswordSchemeError.self) { try PasswordScheme.ssha.hash(Secret("x")) }
    }
}
