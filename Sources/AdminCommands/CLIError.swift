/// A command's failure: one line for standard error and the exit code.
///
/// Exit codes: 0 done, 1 refused (the user already exists / does not exist, authentication failed),
/// 2 usage or any other error.
public struct CLIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32) {
        self.message = message
        self.exitCode = exitCode
    }

    /// Exit code 1: the request was understood and refused.
    public static func refused(_ message: String) -> CLIError { CLIError(message, exitCode: ExitStatus.refused) }
    /// Exit code 2: usage or other errors.
    public static func failure(_ message: String) -> CLIError { CLIError(message, exitCode: ExitStatus.failure) }

    public var description: String { message }
}

/// The exit codes of `saslgate`.
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let refused: Int32 = 1
    public static let failure: Int32 = 2
}
