#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A deliberately tiny reader for the few settings the CLI needs from the daemon's configuration
/// (`passdbs`, `default_realm`, `listen`), until the `AuthConfig` module's parser can be used instead. Only
/// this file knows the file format: Postfix main.cf style, `name = value`, `#` comments, and
/// continuation lines that start with white space.
public struct ConfigLookup: Sendable, Equatable {
    /// Default location of the daemon's configuration.
    public static let defaultPath = "/etc/saslgate/saslgated.conf"

    /// Path of the config file read.
    public var path: String
    /// Settings by name (last one wins), values with continuation lines joined by one space.
    public var settings: [String: String]

    /// Reads and parses `path`; errors say which line is wrong.
    public static func load(path: String) throws(CLIError) -> ConfigLookup {
        guard let bytes = readWholeFile(path) else {
            throw .failure(
                "\(path): cannot read the configuration: \(String(cString: strerror(errno))); give the table with --file PATH"
            )
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws(CLIError) -> ConfigLookup {
        var settings: [String: String] = [:]
        var current: (name: String, value: String)?
        var lineNumber = 0
        func finish() {
            if let c = current { settings[c.name] = c.value }
            current = nil
        }
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if line.first == " " || line.first == "\t" {
                guard current != nil else {
                    throw .failure(
                        "\(path):\(lineNumber): a continuation line (starting with white space) without a setting before it"
                    )
                }
                current!.value += (current!.value.isEmpty ? "" : " ") + trimmedValue(trimmed)
                continue
            }
            finish()
            guard let eq = line.firstIndex(of: "=") else {
                throw .failure("\(path):\(lineNumber): expected 'name = value'")
            }
            let name = String(line[..<eq]).trimmingWhiteSpace()
            guard !name.isEmpty else { throw .failure("\(path):\(lineNumber): a setting without a name before '='") }
            current = (name, trimmedValue(line[line.index(after: eq)...]))
        }
        finish()
        return ConfigLookup(path: path, settings: settings)
    }

    /// `passdbs` when the file does not set it (the daemon's default).
    public static let defaultPassdbs = "passwd-file:/etc/saslgate/users"
    /// `listen` when the file does not set it (the daemon's default).
    public static let defaultListen = "/var/spool/postfix/private/auth"

    /// The first `passwd-file:` entry of `passdbs`, made absolute relative to the config's directory.
    /// Options in braces after an entry (`passwd-file:/x{result_failure=return}`) are skipped.
    public func passwdFilePath() throws(CLIError) -> String {
        let passdbs = settings["passdbs"] ?? ConfigLookup.defaultPassdbs
        var withoutOptions = ""
        var depth = 0
        for c in passdbs {
            if c == "{" {
                depth += 1
                withoutOptions.append(" ")
            } else if c == "}" {
                depth = max(0, depth - 1)
            } else if depth == 0 {
                withoutOptions.append(c)
            }
        }
        let entries = withoutOptions.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
        guard let entry = entries.first(where: { $0.lowercased().hasPrefix("passwd-file:") }) else {
            throw .failure("\(path): 'passdbs' has no passwd-file: entry; give the table with --file PATH")
        }
        let file = String(entry.dropFirst("passwd-file:".count))
        guard !file.isEmpty else { throw .failure("\(path): 'passdbs' has an empty passwd-file: path") }
        return absolute(file)
    }

    /// The daemon's socket (`listen`), made absolute relative to the config's directory.
    public var listenPath: String {
        guard let listen = settings["listen"], !listen.isEmpty else { return ConfigLookup.defaultListen }
        return absolute(listen)
    }

    /// `default_realm`, nil when unset or empty.
    public var defaultRealm: String? {
        guard let r = settings["default_realm"], !r.isEmpty else { return nil }
        return r
    }

    private static func trimmedValue(_ s: Substring) -> String {
        String(s).trimmingWhiteSpace()
    }

    private func absolute(_ file: String) -> String {
        if file.hasPrefix("/") { return file }
        var rest = Substring(file)
        while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
        return directory(of: path) + "/" + rest
    }

    private func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "" : String(path[..<slash])
    }

    private static func readWholeFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    }
}

extension String {
    func trimmingWhiteSpace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        return String(self.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
