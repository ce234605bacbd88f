import Passdb
import Testing

@testable import PassdbLDAP

/// RFC 4515 (filter values) and RFC 4514 (DN values): a login name never changes the structure around it.
@Suite struct LDAPEscapingTests {
    @Test func filterSpecialsAreHexEscaped() {
        #expect(LDAPEscaping.filterValue("alice@example.org") == "alice@example.org")
        #expect(LDAPEscaping.filterValue("*") == "\\2a")
        #expect(LDAPEscaping.filterValue("*)(uid=*") == "\\2a\\29\\28uid=\\2a")
        #expect(LDAPEscaping.filterValue(")(") == "\\29\\28")
        #expect(LDAPEscaping.filterValue("\\29") == "\\5c29")
        #expect(LDAPEscaping.filterValue("a\u{0}b") == "a\\00b")
        #expect(LDAPEscaping.filterValue("tab\there") == "tab\\09here")
        #expect(LDAPEscaping.filterValue("o'brien") == "o'brien")
    }

    @Test func filterKeepsUTF8() {
        #expect(LDAPEscaping.filterValue("jürgen*") == "jürgen\\2a")
        #expect(LDAPEscaping.filterValue("日本(") == "日本\\28")
    }

    /// Whatever the name, the rendered filter has exactly the parentheses the template has.
    @Test(arguments: ["*", ")(", "\\29", "*)(uid=*", "x)(|(uid=*", "a\\", "((((", "*)(objectClass=*))(|(uid=*"])
    func noNameAddsStructure(name: String) throws {
        let template = try LookupTemplate("(&(objectClass=inetOrgPerson)(mail=%u))")
        let rendered = template.render(PassdbRequest(user: name, mechanism: "PLAIN", service: "smtp"), encode: LDAPEscaping.filterValue)
        #expect(rendered.filter { $0 == "(" }.count == 3 && rendered.filter { $0 == ")" }.count == 3)
        #expect(!rendered.dropFirst("(&(objectClass=inetOrgPerson)(mail=".count).dropLast(2).contains("*"))
    }

    @Test func dnSpecialsAreHexEscaped() {
        #expect(LDAPEscaping.dnValue("alice") == "alice")
        #expect(LDAPEscaping.dnValue("a,ou=admins") == "a\\2cou\\3dadmins")
        #expect(LDAPEscaping.dnValue("x+cn=y") == "x\\2bcn\\3dy")
        #expect(LDAPEscaping.dnValue("\"q\";<>\\") == "\\22q\\22\\3b\\3c\\3e\\5c")
        #expect(LDAPEscaping.dnValue("#lead") == "\\23lead")
        #expect(LDAPEscaping.dnValue("mid#dle") == "mid#dle")
        #expect(LDAPEscaping.dnValue(" both ") == "\\20both\\20")
        #expect(LDAPEscaping.dnValue("in side") == "in side")
        #expect(LDAPEscaping.dnValue("n\u{0}ul") == "n\\00ul")
        #expect(LDAPEscaping.dnValue("o'brien") == "o'brien")
        #expect(LDAPEscaping.dnValue("zoë,") == "zoë\\2c")
    }

    @Test func userDNTemplate() throws {
        let template = try LookupTemplate("uid=%n,ou=people,dc=example,dc=org")
        let r = PassdbRequest(user: "evil,ou=admins@example.org", mechanism: "PLAIN", service: "smtp")
        #expect(template.render(r, encode: LDAPEscaping.dnValue) == "uid=evil\\2cou\\3dadmins,ou=people,dc=example,dc=org")
    }
}
