import AuthConfig
import PassdbPgSQL
import Testing

/// The `connect` words and the settings file's checks.
@Suite struct PgSQLSettingsTests {
    @Test func hostsInOrderWithPorts() throws {
        let c = try PgConnectString("host=db1 host=db2 port=5432 dbname=mail user=saslgate password='se cr\\'et'")
        #expect(c.endpoints == [.tcp(host: "db1", port: 5432), .tcp(host: "db2", port: 5432)])
        #expect(c.database == "mail")
        #expect(c.password == "se cr'et")
        #expect(!c.description.contains("se cr"))
        let paired = try PgConnectString("host=127.0.0.1 port=1 host=127.0.0.1 port=5433 user=u")
        #expect(paired.endpoints == [.tcp(host: "127.0.0.1", port: 1), .tcp(host: "127.0.0.1", port: 5433)])
        let commas = try PgConnectString("host=a,/run/pg port=5,6 user=u connect_timeout=3 sslmode=disable")
        #expect(commas.endpoints == [.tcp(host: "a", port: 5), .unixSocket(path: "/run/pg/.s.PGSQL.6")])
        #expect(commas.connectTimeout == 3)
        let tls = try PgConnectString("host=db user=u sslmode=verify-full sslrootcert=/etc/ssl/db.pem")
        #expect(tls.sslMode == .verifyFull && tls.sslRootCert == "/etc/ssl/db.pem")
    }

    @Test func refusals() {
        func refused(_ text: String) -> String? {
            do { _ = try PgConnectString(text); return nil } catch { return error.description }
        }
        #expect(refused("host=db")?.contains("user=") == true)
        #expect(refused("host=a host=b port=1,2,3 user=u")?.contains("3 ports") == true)
        #expect(refused("host=db user=u sslmode=prefer")?.contains("not supported") == true)
        #expect(refused("host=db user=u connect_timeout=10")?.contains("1 to 9") == true)
        #expect(refused("host=db user=u options=-c")?.contains("unknown word") == true)
        #expect(refused("host=db user=u password='never-shown")?.contains("never-shown") == false)
        #expect(refused("host=db user=u sslrootcert=/x.pem")?.contains("verify-full") == true)
    }

    @Test func fileErrorsNameTheLine() throws {
        let good = try PgSQLSettings(DriverConfigFile.parse(
            text: "connect = host=/tmp user=u\npassword_query = SELECT password FROM u WHERE n = '%u'\n",
            file: "/etc/saslgate/pgsql.conf", keys: PgSQLSettings.keys))
        #expect(good.queryTimeout == .seconds(5) && good.defaultScheme == .crypt && good.poolSize == 2)
        let text = """
            connect = host=db user=u
            password_query = SELECT password FROM u WHERE n = '%n' AND p = '%w'
            query_timeout = 10s
            default_pass_scheme = ROT13
            pool_size = 0
            """
        do {
            _ = try PgSQLSettings(DriverConfigFile.parse(text: text, file: "/etc/saslgate/pgsql.conf", keys: PgSQLSettings.keys))
            Issue.record("accepted")
        } catch {
            let lines = error.errors.map(\.description)
            #expect(lines.count == 4)
            #expect(lines.contains { $0.hasPrefix("/etc/saslgate/pgsql.conf:2:") && $0.contains("never sends it") })
            #expect(lines.contains { $0.hasPrefix("/etc/saslgate/pgsql.conf:3:") && $0.contains("10 s") })
            #expect(lines.contains { $0.hasPrefix("/etc/saslgate/pgsql.conf:4:") && $0.contains("ROT13") })
            #expect(lines.contains { $0.hasPrefix("/etc/saslgate/pgsql.conf:5:") })
        }
    }
}
