import AuthConfig
import AuthEngine
import Logging
import Passdb
import PassdbPAM
import PassdbSASLDB

/// Builds the configured passdbs: the one place that maps driver names to implementations.
enum PassdbFactory {
    static func make(_ specs: [PassdbSpec], settings: Settings, executor: any BlockingExecutor, logger: Logger)
        throws(ConfigErrors) -> PassdbChain
    {
        var out: [PassdbChain.Entry] = []
        var errors: [ConfigError] = []
        for spec in specs {
            switch spec.driver {
            case "passwd-file":
                if let unknown = spec.options.keys.sorted().first {
                    errors.append(ConfigError(file: settings.file, line: spec.line,
                        "passdb \(spec): unknown option '\(unknown)'; passwd-file takes only result_failure and result_internalfail"))
                    continue
                }
                do {
                    let db = try PasswdFilePassdb(
                        path: spec.argument, defaultRealm: settings.defaultRealm, executor: executor, logger: logger)
                    out.append(.init(db, resultFailure: spec.resultFailure, resultInternalFail: spec.resultInternalFail))
                } catch {
                    errors.append(ConfigError(file: settings.file, line: spec.line, "passdb \(spec): \(error)"))
                }
            case "sasldb":
                if let unknown = spec.options.keys.sorted().first {
                    errors.append(ConfigError(file: settings.file, line: spec.line,
                        "passdb \(spec): unknown option '\(unknown)'; sasldb takes only result_failure and result_internalfail"))
                    continue
                }
                do {
                    let db = try SASLDBPassdb(path: spec.argument, executor: executor, logger: logger)
                    out.append(.init(db, resultFailure: spec.resultFailure, resultInternalFail: spec.resultInternalFail))
                } catch {
                    errors.append(ConfigError(file: settings.file, line: spec.line, "passdb \(spec): \(error)"))
                }
            case "pam":
                do {
                    let options = try PAMOptions.parse(spec.options)
                    let db = try PAMPassdb(
                        service: spec.argument, options: options, defaultRealm: settings.defaultRealm, logger: logger)
                    out.append(.init(db, resultFailure: spec.resultFailure, resultInternalFail: spec.resultInternalFail))
                } catch {
                    errors.append(ConfigError(file: settings.file, line: spec.line, "passdb \(spec): \(error)"))
                }
            default:
                errors.append(ConfigError(file: settings.file, line: spec.line, "unknown passdb driver '\(spec.driver)'"))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return PassdbChain(out)
    }
}
