#if canImport(Glibc)
import Glibc
#endif

// saslgate-bench: see `usage` in Options.swift.

do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    switch options.mode {
    case .load: try runLoad(options)
    case .idle: try runIdle(options)
    case .probe: try runProbe(options)
    }
} catch {
    printErr("saslgate-bench: \(error)")
    exit(2)
}
exit(exitCode)
