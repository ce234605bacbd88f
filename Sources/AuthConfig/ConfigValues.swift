#if canImport(Glibc)
import Glibc
#endif
import AuthCore

// How values are written in the file: lists, yes/no, durations, networks; and the hint for a misspelt key.
extension Settings {
    /// `path` made absolute against the current directory, so paths derived from it stay valid.
    static func absolutePath(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return path }
        var cwd = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if cwd.hasSuffix("/") { cwd.removeLast() }
        var rest = Substring(path)
        while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
        return cwd + "/" + rest
    }

    static func isCIDR(_ text: String) -> Bool { CIDR(text) != nil }

    /// Splits a list value at white space and commas, as Postfix does.
    static func words(_ value: String) -> [String] {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
    }

    static func parseBool(_ v: String) -> Bool? {
        switch v.lowercased() {
        case "yes", "true", "on", "1": true
        case "no", "false", "off", "0": false
        default: nil
        }
    }

    /// `2`, `2s`, `500ms`, `1m`, `1h` → seconds.
    static func parseDuration(_ v: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, factor) in units where v.hasSuffix(suffix) {
            guard let n = Double(v.dropLast(suffix.count)), n >= 0, n.isFinite else { return nil }
            return n * factor
        }
        guard let n = Double(v), n >= 0, n.isFinite else { return nil }
        return n
    }

    static func closest(_ name: String, in candidates: [String]) -> String? {
        candidates.first { $0.hasPrefix(name) || name.hasPrefix($0) || editDistance($0, name) <= 2 }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}
