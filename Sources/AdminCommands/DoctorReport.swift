/// One result line of `saslgate doctor`: `ok: …`, `warning: …; fix: …`, `FAIL: …; fix: …`.
public struct DoctorFinding: Sendable, Equatable {
    public enum Level: String, Sendable {
        case ok = "ok"
        case warning = "warning"
        case fail = "FAIL"
    }

    public var level: Level
    public var text: String
    public var fix: String?

    public init(_ level: Level, _ text: String, fix: String? = nil) {
        self.level = level
        self.text = text
        self.fix = fix
    }

    public static func ok(_ text: String) -> DoctorFinding { DoctorFinding(.ok, text) }
    public static func warning(_ text: String, fix: String? = nil) -> DoctorFinding {
        DoctorFinding(.warning, text, fix: fix)
    }
    public static func fail(_ text: String, fix: String) -> DoctorFinding { DoctorFinding(.fail, text, fix: fix) }

    /// The printed line (`prefix` names the master.cf services it is about).
    public func line(prefix: String = "") -> String {
        var s = "\(level.rawValue): \(prefix)\(text)"
        if let fix { s += "; fix: \(fix)" }
        return s
    }
}

/// Everything `saslgate doctor` prints, in order.
public struct DoctorReport: Sendable, Equatable {
    /// Finding lines, already prefixed.
    public var lines: [String] = []
    public var failures = 0
    public var warnings = 0
    /// The main.cf lines to use.
    public var mainCF: [String] = []
    /// The same as a `postconf -e` command.
    public var postconfCommand = ""
    /// `postfix reload` (with `-c DIR` for another configuration directory).
    public var reloadCommand = "postfix reload"

    public var failed: Bool { failures > 0 }

    mutating func add(_ finding: DoctorFinding, prefix: String = "") {
        lines.append(finding.line(prefix: prefix))
        switch finding.level {
        case .ok: break
        case .warning: warnings += 1
        case .fail: failures += 1
        }
    }

    /// The whole output.
    public var output: [String] {
        var out = lines
        out.append("")
        out.append(
            failures == 0
                ? "No problems found\(warnings > 0 ? " (\(warnings) warning\(warnings == 1 ? "" : "s"))" : "")."
                : "\(failures) problem\(failures == 1 ? "" : "s") (FAIL) and \(warnings) warning\(warnings == 1 ? "" : "s")."
        )
        out.append("Postfix main.cf lines for saslgated:")
        out += mainCF.map { "    \($0)" }
        out.append("Set them with:")
        out.append("    \(postconfCommand)")
        out.append("    \(reloadCommand)")
        return out
    }
}
