/// Escaping of request values before they go into LDAP text, so that no login name can change the
/// structure around it: a filter stays the filter the operator wrote, a DN names the entry it names.
/// `LookupTemplate.render` calls one of these for every variable.
public enum LDAPEscaping {
    /// RFC 4515 §3: a value inside a search filter (`(mail=VALUE)`). `*`, `(`, `)`, `\` and NUL must be
    /// written as `\2a`, `\28`, `\29`, `\5c`, `\00`; control bytes and DEL are escaped too (allowed by the
    /// RFC, and nothing a name should carry unescaped). Other bytes, UTF-8 included, stay as they are.
    /// So `*)(uid=*` becomes `\2a\29\28uid=\2a`: one literal value, never a wildcard or a new clause.
    public static func filterValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "*"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\\"), 0..<0x20, 0x7F:
                appendHex(byte, to: &out)
            default:
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return repairUTF8(out, value)
    }

    /// RFC 4514 §2.4: a value inside a DN (`uid=VALUE,ou=people,...`). `"` `+` `,` `;` `<` `>` `\` and
    /// `=` anywhere, `#` or a space first, a space last, NUL and control bytes are written as `\XX`
    /// (hex pairs, which every server reads). So `a,ou=admins` cannot add an RDN and `x+cn=y` cannot add
    /// an attribute to the RDN.
    public static func dnValue(_ value: String) -> String {
        let bytes = Array(value.utf8)
        var out = ""
        out.reserveCapacity(bytes.count)
        for (i, byte) in bytes.enumerated() {
            let special: Bool
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "<"),
                UInt8(ascii: ">"), UInt8(ascii: "\\"), UInt8(ascii: "="), 0..<0x20, 0x7F:
                special = true
            case UInt8(ascii: "#"):
                special = i == 0
            case UInt8(ascii: " "):
                special = i == 0 || i == bytes.count - 1
            default:
                special = false
            }
            if special {
                appendHex(byte, to: &out)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return repairUTF8(out, value)
    }

    private static func appendHex(_ byte: UInt8, to out: inout String) {
        let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
        out.append("\\")
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }

    /// The loops above append bytes >= 0x80 one by one as Latin-1 scalars; turn the result back into the
    /// UTF-8 bytes of the original (the escapes are ASCII, so byte-wise rebuilding is exact).
    private static func repairUTF8(_ latin1: String, _ original: String) -> String {
        guard original.utf8.contains(where: { $0 >= 0x80 }) else { return latin1 }
        let bytes = latin1.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
