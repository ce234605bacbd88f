import Passdb
import Testing

@Suite struct LookupTemplateTests {
    let request = PassdbRequest(
        user: "Alice@Example.org", mechanism: "PLAIN", service: "smtp", remoteIP: "192.0.2.7", localIP: "192.0.2.1")

    @Test func shortAndLongForms() throws {
        let t = try LookupTemplate("SELECT password FROM users WHERE username = '%n' AND domain = '%{domain}' -- %u %s %l %r %%")
        #expect(t.uses.map(\.variable) == [.username, .domain, .user, .service, .localIP, .remoteIP])
        #expect(t.render(request) { "<\($0)>" }
            == "SELECT password FROM users WHERE username = '<Alice>' AND domain = '<example.org>' -- <Alice@Example.org> <smtp> <192.0.2.1> <192.0.2.7> %")
    }

    @Test func caseModifiers() throws {
        let t = try LookupTemplate("%Lu|%Un|%L{user}")
        #expect(t.render(request) { $0 } == "alice@example.org|ALICE|alice@example.org")
        #expect(t.uses[0].spelled == "%L{user}")
    }

    @Test func absentValuesAreEmpty() throws {
        let bare = PassdbRequest(user: "bob", mechanism: "PLAIN", service: "smtp")
        #expect(try LookupTemplate("[%d][%r][%l]").render(bare) { $0 } == "[][][]")
    }

    @Test func passwordAndUnknownVariablesAreRefused() {
        for text in ["x = '%w'", "x = '%{password}'", "%Lw"] {
            #expect(throws: LookupTemplateError.self) { try LookupTemplate(text) }
        }
        for text in ["%q", "%{nope}", "%{user", "50%", "%L"] {
            #expect(throws: LookupTemplateError.self) { try LookupTemplate(text) }
        }
    }

    @Test func literalRunsAreMerged() throws {
        let t = try LookupTemplate("a%%b%nc")
        #expect(t.parts == [.literal("a%b"), .variable(.init(variable: .username, modifier: nil)), .literal("c")])
    }
}
