/// Makes client-supplied text safe for a log line: printable ASCII only, others as `?`, cut to `limit`.
public func sanitizeForLog(_ text: String, limit: Int = 80) -> String {
    // Common case: already printable ASCII and short enough; return it as it is (no copy).
    if text.utf8.count <= limit && text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
    var out = ""
    out.reserveCapacity(Swift.min(text.utf8.count, limit + 3))
    var n = 0
    for byte in text.utf8 {
        if n >= limit {
            out += "..."
            break
        }
        if byte >= 0x20 && byte < 0x7F {
            out.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            out += "?"
        }
        n += 1
    }
    return out
}
