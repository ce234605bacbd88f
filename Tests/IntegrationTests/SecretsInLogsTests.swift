import AuthCore
import AuthCrypto
import AuthProtocol
import Foundation
import SASL
import Testing

/// Runs every mechanism against every passdb this machine can host, with good and bad passwords and
/// broken exchanges, at log_level = debug, and proves that no log line contains a password, its base64,
/// or any base64 payload the client sent.
@Suite(.serialized) struct SecretsInLogsTests {
    static let password = "Pw-9f3k!Qz"
    static let wrong = "Wr0ng-Xy7"

    /// Every string that must never appear in a log.
    static func forbidden(_ sentPayloads: [String]) -> [String] {
        var out = [password, wrong, b64(password), b64(wrong)]
        out += sentPayloads.filter { $0.count >= 8 }
        return out
    }

    /// A client that runs one mechanism and records every base64 payload it sends.
    final class Exchange {
        let c: AuthClient
        var sent: [String] = []
        var nextID = 1
        init(_ c: AuthClient) { self.c = c }

        func id() -> Int {
            defer { nextID += 1 }
            return nextID
        }

        func send(_ line: String, payload: [UInt8]? = nil) {
            if let payload { sent.append(DovecotBase64.encode(payload)) }
            c.send(line)
        }

        func challenge(_ line: String?, id: Int) -> [UInt8]? {
            guard let line, line.hasPrefix("CONT\t\(id)\t") else { return nil }
            return DovecotBase64.decode(String(line.dropFirst("CONT\t\(id)\t".count)))
        }

        /// Returns the final line (OK/FAIL).
        func run(_ mech: String, user: String, password: String) -> String? {
            let i = id()
            let pw = Secret(password)
            switch mech {
            case "PLAIN":
                let r = Array("\0\(user)\0\(password)".utf8)
                send("AUTH\t\(i)\tPLAIN\tservice=smtp\tsecured\tresp=\(DovecotBase64.encode(r))\n", payload: r)
                return c.readLine()
            case "LOGIN":
                send("AUTH\t\(i)\tLOGIN\tservice=smtp\tsecured\n")
                _ = c.readLine()
                send("CONT\t\(i)\t\(b64(user))\n", payload: Array(user.utf8))
                _ = c.readLine()
                send("CONT\t\(i)\t\(b64(password))\n", payload: Array(password.utf8))
                return c.readLine()
            case "CRAM-MD5":
                send("AUTH\t\(i)\tCRAM-MD5\tservice=smtp\n")
                guard let ch = challenge(c.readLine(), id: i) else { return nil }
                let r = CRAMMD5.response(user: user, password: pw, challenge: ch)
                send("CONT\t\(i)\t\(DovecotBase64.encode(r))\n", payload: r)
                return c.readLine()
            case "DIGEST-MD5":
                send("AUTH\t\(i)\tDIGEST-MD5\tservice=smtp\n")
                guard let ch = challenge(c.readLine(), id: i) else { return nil }
                let text = String(decoding: ch, as: UTF8.self)
                guard let nonceRange = text.range(of: "nonce=\""),
                    let end = text[nonceRange.upperBound...].firstIndex(of: "\"")
                else { return nil }
                let nonce = String(text[nonceRange.upperBound..<end])
                let realm = "example.org"
                let ha1 = DigestMD5.ha1(user: user, realm: realm, password: pw)
                guard let d = DigestMD5.digests(ha1: ha1, nonce: nonce, cnonce: "c0ffee42", digestURI: "smtp/localhost")
                else { return nil }
                let resp = Array(("username=\"\(user)\",realm=\"\(realm)\",nonce=\"\(nonce)\",cnonce=\"c0ffee42\","
                    + "nc=00000001,qop=auth,digest-uri=\"smtp/localhost\",response=\(d.response),charset=utf-8").utf8)
                send("CONT\t\(i)\t\(DovecotBase64.encode(resp))\n", payload: resp)
                let next = c.readLine()
                guard next?.hasPrefix("CONT") == true else { return next }
                send("CONT\t\(i)\t\n")
                return c.readLine()
            case "SCRAM-SHA-1", "SCRAM-SHA-256":
                let hash: SCRAMHash = mech == "SCRAM-SHA-1" ? .sha1 : .sha256
                let bare = "n=\(user),r=clientnonce0123456789"
                let first = Array(("n,," + bare).utf8)
                send("AUTH\t\(i)\t\(mech)\tservice=smtp\tresp=\(DovecotBase64.encode(first))\n", payload: first)
                guard let sf = challenge(c.readLine(), id: i) else { return nil }
                let serverFirst = String(decoding: sf, as: UTF8.self)
                var f: [String: String] = [:]
                for part in serverFirst.split(separator: ",") { f[String(part.prefix(1))] = String(part.dropFirst(2)) }
                guard let salt = f["s"].flatMap(DovecotBase64.decode), let iterations = f["i"].flatMap(Int.init),
                    let nonce = f["r"],
                    let salted = SCRAM.saltedPassword(hash: hash, password: pw, salt: salt, iterations: iterations)
                else { return nil }
                let noProof = "c=biws,r=\(nonce)"
                let proof = SCRAM.clientProof(
                    hash: hash, saltedPassword: salted, authMessage: Array("\(bare),\(serverFirst),\(noProof)".utf8))
                let final = Array("\(noProof),p=\(DovecotBase64.encode(proof))".utf8)
                send("CONT\t\(i)\t\(DovecotBase64.encode(final))\n", payload: final)
                let next = c.readLine()
                guard next?.hasPrefix("CONT") == true else { return next }
                send("CONT\t\(i)\t\n")
                return c.readLine()
            default:
                return nil
            }
        }
    }

    static let allMechanisms = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]

    func exercise(_ d: DaemonUnderTest, mechanisms: [String], user: String) throws -> [String] {
        var sent: [String] = []
        for mech in mechanisms {
            for (pw, good) in [(Self.password, true), (Self.wrong, false)] {
                let c = try d.connect()
                c.postfixHandshake()
                let x = Exchange(c)
                let answer = x.run(mech, user: user, password: pw)
                #expect(answer?.hasPrefix(good ? "OK" : "FAIL") == true, "\(mech) \(good ? "good" : "bad"): \(answer ?? "nil")")
                sent += x.sent
            }
        }
        // Broken exchanges: a protocol violation carrying the password, and a cleartext refusal.
        let c = try d.connect()
        c.postfixHandshake()
        let r = b64("\0\(user)\0\(Self.password)")
        sent.append(r)
        c.send("AUTH\t1\tPLAIN\tservice=smtp\tresp=\(r)\n")
        _ = c.readLine()
        c.send("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=\(r)\textra\n")
        _ = c.isClosedByServer()
        return sent
    }

    func assertClean(_ d: DaemonUnderTest, sent: [String]) {
        let log = d.log
        #expect(log.contains("debug:"), "the daemon must have logged at debug level")
        #expect(log.contains("auth ok") && log.contains("auth failed"))
        for secret in Self.forbidden(sent) {
            #expect(!log.contains(secret), "a secret or client payload reached the log: \(secret.prefix(4))…")
        }
    }

    @Test func passwdFileAllMechanisms() throws {
        // {PLAIN} serves every mechanism; the SHA512-CRYPT user covers the hashing path.
        let users = "sec@example.org:{PLAIN}\(Self.password)\n"
        let d = try DaemonUnderTest(
            users: users, mechanisms: Self.allMechanisms.joined(separator: " "))
        defer { d.stop() }
        let sent = try exercise(d, mechanisms: Self.allMechanisms, user: "sec")
        assertClean(d, sent: sent)
    }

    @Test func passwdFileCryptHash() throws {
        let hash = try #require(cryptSHA512(Self.password))
        let d = try DaemonUnderTest(users: "sec@example.org:{SHA512-CRYPT}\(hash)\n")
        defer { d.stop() }
        let sent = try exercise(d, mechanisms: ["PLAIN", "LOGIN"], user: "sec")
        assertClean(d, sent: sent)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/lib/x86_64-linux-gnu/security/pam_pwdfile.so")
        || FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/security/pam_pwdfile.so")))
    func pamAllPlaintextMechanisms() throws {
        let dir = NSTemporaryDirectory() + "sgpam-" + UUID().uuidString.prefix(6)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hash = try #require(cryptSHA512(Self.password))
        try "sec:\(hash)\n".write(toFile: dir + "/pwdfile", atomically: true, encoding: .utf8)
        try "auth required pam_pwdfile.so pwdfile=\(dir)/pwdfile\naccount required pam_permit.so\n"
            .write(toFile: dir + "/sgtest", atomically: true, encoding: .utf8)
        let d = try DaemonUnderTest(extraConfig: "passdbs = pam:sgtest{confdir=\(dir)}")
        defer { d.stop() }
        let sent = try exercise(d, mechanisms: ["PLAIN", "LOGIN"], user: "sec")
        assertClean(d, sent: sent)
    }
}

/// SHA512-CRYPT of a password with a fixed salt, via openssl (tests only).
func cryptSHA512(_ password: String) -> String? {
    let p = Process()
    let out = Pipe()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    p.arguments = ["passwd", "-6", "-salt", "sgtestsalt", "-stdin"]
    let input = Pipe()
    p.standardInput = input
    p.standardOutput = out
    guard (try? p.run()) != nil else { return nil }
    input.fileHandleForWriting.write(Data(password.utf8))
    try? input.fileHandleForWriting.close()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return text.split(separator: "\n").first.map(String.init)
}
