#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One `name = value` entry of a main.cf-style file, with the line it starts on.
public struct ConfigEntry: Equatable, Sendable {
    public var name: String
    public var value: String
    public var line: Int
}

/// Reads Postfix main.cf syntax: `name = value`; `#` starts a comment line (only at the start of a
/// logical line, as in Postfix); a line that starts with white space continues the previous entry;
/// blank lines end nothing and are ignored. Duplicate names are an error here (Postfix silently keeps
/// the last one, which hides mistakes in an auth daemon's config).
public enum ConfigFileParser {
    /// Largest config file accepted; a config is a few kilobytes, anything bigger is a mistake.
    public static let maxFileSize = 1 << 20

    public static func parse(text: String, file: String) throws(ConfigErrors) -> [ConfigEntry] {
        var entries: [ConfigEntry] = []
        var errors: [ConfigError] = []
        var seen: [String: Int] = [:]
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            let trimmed = line.trimmedSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if line.first == " " || line.first == "\t" {
                guard !entries.isEmpty else {
                    errors.append(ConfigError(file: file, line: lineNumber,
                        "continuation line without a preceding 'name = value' line; remove the leading white space"))
                    continue
                }
                entries[entries.count - 1].value += (entries[entries.count - 1].value.isEmpty ? "" : " ") + trimmed
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                errors.append(ConfigError(file: file, line: lineNumber,
                    "expected 'name = value', got '\(preview(trimmed))'"))
                continue
            }
            let name = line[..<eq].trimmedSpaces
            let value = line[line.index(after: eq)...].trimmedSpaces
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                errors.append(ConfigError(file: file, line: lineNumber,
                    "bad parameter name '\(preview(name))': use letters, digits and '_'"))
                continue
            }
            if let first = seen[name] {
                errors.append(ConfigError(file: file, line: lineNumber,
                    "'\(name)' is already set on line \(first); keep only one"))
                continue
            }
            seen[name] = lineNumber
            entries.append(ConfigEntry(name: name, value: value, line: lineNumber))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return entries
    }

    private static func preview(_ s: String) -> String {
        s.count > 60 ? String(s.prefix(60)) + "..." : s
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and TABs.
    var trimmedSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}
