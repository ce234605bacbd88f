import AuthConfig
import Testing

@Suite struct DriverConfigFileTests {
    let keys: [DriverConfigFile.Key] = [
        .init("connect", "the database to use"),
        .init("query_timeout", default: "5s", "how long a query may take"),
    ]

    @Test func valuesDefaultsAndLines() throws {
        let f = try DriverConfigFile.parse(text: "# c\nconnect = host=db1\n  dbname=mail\n", file: "/etc/x.conf", keys: keys)
        #expect(f["connect"] == "host=db1 dbname=mail")
        #expect(f["query_timeout"] == "5s")
        #expect(f.line(of: "connect") == 2)
        #expect(!f.isSet("query_timeout"))
        #expect(f.error("connect", "bad").description == "/etc/x.conf:2: connect: bad")
    }

    @Test func everyProblemWithItsLine() {
        #expect {
            try DriverConfigFile.parse(text: "conect = x\nquery_timeout = 1s\nquery_timeout = 2s\n", file: "/etc/x.conf", keys: keys)
        } throws: { error in
            "\(error)".contains("/etc/x.conf:3: 'query_timeout' is already set on line 2")
        }
        #expect {
            try DriverConfigFile.parse(text: "conect = x\n", file: "/etc/x.conf", keys: keys)
        } throws: { error in
            let text = "\(error)"
            return text.contains("/etc/x.conf:1: unknown key 'conect'") && text.contains("'connect' is not set")
        }
    }

    @Test func unreadableFileNamesTheFile() {
        #expect {
            try DriverConfigFile.load(path: "/nonexistent/pgsql.conf", keys: keys)
        } throws: { error in
            "\(error)".hasPrefix("/nonexistent/pgsql.conf: cannot read")
        }
    }
}
