import AuthConfig
import Logging
import Passdb

/// Builds the configured passdbs: the one place that maps driver names to implementations.
enum PassdbFactory {
    static func make(_ specs: [PassdbSpec], settings: Settings, executor: any BlockingExecutor, logger: Logger)
        throws(ConfigErrors) -> [any PasswordDatabase]
    {
        var out: [any PasswordDatabase] = []
        var errors: [ConfigError] = []
        for spec in specs {
            switch spec.driver {
            case "passwd-file":
                do {
                    out.append(try PasswdFilePassdb(
                        path: spec.argument, defaultRealm: settings.defaultRealm, executor: executor, logger: logger))
                } catch {
                    errors.append(ConfigError(file: settings.file, line: spec.line, "passdb \(spec): \(error)"))
                }
            default:
                errors.append(ConfigError(file: settings.file, line: spec.line, "unknown passdb driver '\(spec.driver)'"))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return out
    }
}
