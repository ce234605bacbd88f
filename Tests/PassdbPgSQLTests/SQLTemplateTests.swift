import Passdb
import PassdbPgSQL
import Testing

/// `password_query` → SQL with `$n`: no request value ever reaches the SQL text.
@Suite struct SQLTemplateTests {
    func sql(_ text: String) throws -> SQLTemplate { try SQLTemplate(LookupTemplate(text)) }

    func refused(_ text: String) -> String? {
        do {
            _ = try sql(text)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func quotedAndBareVariablesBecomeParameters() throws {
        let t = try sql("SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND active")
        #expect(t.sql == "SELECT password FROM users WHERE username = $1 AND domain = $2 AND active")
        #expect(t.parameters.map(\.variable) == [.username, .domain])
        let bare = try sql("SELECT password FROM users WHERE uid = %n")
        #expect(bare.sql == "SELECT password FROM users WHERE uid = $1")
    }

    @Test func longFormsModifiersAndReuse() throws {
        let t = try sql("SELECT password FROM u WHERE name = '%{user}' OR alias = '%u' OR lower(name) = '%Lu' AND svc = %{service}")
        #expect(t.sql == "SELECT password FROM u WHERE name = $1 OR alias = $1 OR lower(name) = $2 AND svc = $3")
        #expect(t.parameters.count == 3)
        #expect(t.parameters[1].modifier == .lower)
    }

    /// The batch form: each parameter an array, unnested with its ordinal; the query runs once per element
    /// with the element's value where it had `$k`, cast to the type PostgreSQL gave `$k` (nil: text, no
    /// cast), and every row carries the ordinal first.
    @Test func theBatchFormBindsArraysAndNumbersTheRows() throws {
        let t = try sql("SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND email = '%n@%d' AND active")
        #expect(t.batchable)
        #expect(t.batchSQL(parameterTypes: [nil, nil]) == "SELECT saslgate_batch.i::text AS saslgate_batch_index, saslgate_q.* FROM unnest($1::text[], $2::text[])"
            + " WITH ORDINALITY AS saslgate_batch(p1, p2, i) CROSS JOIN LATERAL (\n"
            + "SELECT password FROM users WHERE username = saslgate_batch.p1 AND domain = saslgate_batch.p2"
            + " AND email = (saslgate_batch.p1 || '@' || saslgate_batch.p2) AND active\n) AS saslgate_q")
        // A citext or enum parameter compares as such: the element is cast to its type.
        let typed = try #require(t.batchSQL(parameterTypes: ["citext", "character varying"]))
        #expect(typed.contains("username = (saslgate_batch.p1::citext) AND domain = (saslgate_batch.p2::character varying)"))
        // A type name PostgreSQL would quote, a missing type: no batch form.
        #expect(t.batchSQL(parameterTypes: ["\"Odd Type\"", nil]) == nil)
        #expect(t.batchSQL(parameterTypes: ["text; DROP TABLE users", nil]) == nil)
        #expect(t.batchSQL(parameterTypes: [nil]) == nil)
        // A trailing semicolon goes; a trailing comment ends on its own line, before the parenthesis.
        let semi = try sql("SELECT password FROM u WHERE n = %u ;  ")
        #expect(semi.batchSQL(parameterTypes: [nil])?.hasSuffix("WHERE n = saslgate_batch.p1\n) AS saslgate_q") == true)
        let comment = try sql("SELECT password FROM u WHERE n = %u -- the login")
        #expect(comment.batchSQL(parameterTypes: [nil])?.hasSuffix("saslgate_batch.p1 -- the login\n) AS saslgate_q") == true)
        // Literals stay as written, a bound variable inside one too.
        let literal = try sql("SELECT password FROM u WHERE n = %u AND note <> 'p1' AND tag = 'x-%n'")
        #expect(literal.batchSQL(parameterTypes: [nil, nil])?.contains("note <> 'p1' AND tag = ('x-' || saslgate_batch.p2)") == true)
        // No variable: nothing to batch (every request would get the same rows).
        #expect(try !sql("SELECT password FROM u LIMIT 1").batchable)
        // A query naming the batch form's aliases (its own table, say), or with a Unicode-escaped
        // identifier that could spell one, is never run in that form: its table would stand where the
        // request's values are meant.
        #expect(try !sql("SELECT password FROM Saslgate_Batch WHERE p1 = %u").batchable)
        #expect(try !sql("SELECT password FROM u AS saslgate_q WHERE n = %u").batchable)
        #expect(try !sql("SELECT password FROM U&\"saslgate\\005fbatch\" WHERE n = %u").batchable)
        #expect(SQLTemplate.batchIndexColumn == "saslgate_batch_index")
    }

    @Test func mixedLiteralsBecomeConcatenations() throws {
        let t = try sql("SELECT password FROM u WHERE email = '%n@%d'")
        #expect(t.sql == "SELECT password FROM u WHERE email = ($1 || '@' || $2)")
        let q = try sql("SELECT password FROM u WHERE tag = 'it''s %n' AND x = 'a''b'")
        #expect(q.sql == "SELECT password FROM u WHERE tag = ('it''s ' || $1) AND x = 'a''b'")
    }

    @Test func literalsCommentsAndDollarQuotesStayAsWritten() throws {
        let text = "SELECT password, 'x''y' AS z, $$a'b$$, $t$ %% $t$ FROM u -- it's a comment\nWHERE n = '%n' /* it's /* nested */ here */"
        let t = try sql(text)
        #expect(t.sql == "SELECT password, 'x''y' AS z, $$a'b$$, $t$ % $t$ FROM u -- it's a comment\nWHERE n = $1 /* it's /* nested */ here */")
        #expect(try sql("SELECT \"pass'word\" AS password FROM u WHERE n = '%n'").sql
            == "SELECT \"pass'word\" AS password FROM u WHERE n = $1")
        #expect(try sql("SELECT password FROM a$b WHERE e = E'x\\'y' AND n = '%n'").sql
            == "SELECT password FROM a$b WHERE e = E'x\\'y' AND n = $1")
    }

    @Test func refusesWhatCannotBeBound() {
        #expect(refused("SELECT password FROM u WHERE n = $1")?.contains("numbers the parameters") == true)
        #expect(refused("SELECT password FROM u WHERE n = E'%n'")?.contains("escape string") == true)
        #expect(refused("SELECT \"%n\" FROM u")?.contains("quoted identifier") == true)
        #expect(refused("SELECT password FROM u -- %n")?.contains("comment") == true)
        #expect(refused("SELECT password FROM u WHERE n = $$%n$$")?.contains("dollar-quoted") == true)
        #expect(refused("SELECT password FROM u WHERE n = '%n")?.contains("not closed") == true)
        #expect(refused("SELECT password FROM u WHERE p = '%w'")?.contains("never sends it") == true)
    }

    /// The values go to the parameters unchanged, quotes and all; the SQL text is the same for every user.
    @Test func injectionAttemptsAreOnlyValues() throws {
        let t = try sql("SELECT password FROM users WHERE username = '%n' AND domain = '%d'")
        for name in ["x' OR '1'='1@example.org", "'; DROP TABLE users; --@example.org", "o'brien@example.org"] {
            let request = PassdbRequest(user: name, mechanism: "PLAIN", service: "smtp")
            #expect(t.values(for: request) == [request.localPart, "example.org"])
            #expect(t.sql == "SELECT password FROM users WHERE username = $1 AND domain = $2")
        }
        let explained = t.explained(for: PassdbRequest(user: "o'brien@example.org", mechanism: "PLAIN", service: "smtp"))
        #expect(explained == [
            "query: SELECT password FROM users WHERE username = $1 AND domain = $2",
            "$1 = %{username} = 'o'brien'", "$2 = %{domain} = 'example.org'",
        ])
    }
}
