public import AuthCore

/// Getting passwords from the person at the keyboard or from standard input; never from argv.
public enum PasswordInput {
    /// A new password: one line of standard input with `fromStandardInput`, else asked twice on the
    /// terminal (the two must match). Empty passwords are refused.
    public static func newPassword(fromStandardInput: Bool, io: CommandIO) throws(CLIError) -> Secret {
        let password: Secret
        if fromStandardInput {
            password = try readStandardInput(io)
        } else {
            let first = try prompt("New password: ", io)
            let second = try prompt("Retype new password: ", io)
            guard first.withBytes({ second.constantTimeEquals($0) }) else {
                throw .failure("the two passwords do not match; nothing was changed")
            }
            password = first
        }
        guard !password.isEmpty else { throw .failure("empty password refused") }
        return password
    }

    /// The password for one authentication test: standard input (asked for, or piped in: standard input
    /// is not a terminal) or one terminal prompt.
    public static func existingPassword(fromStandardInput: Bool, io: CommandIO) throws(CLIError) -> Secret {
        let piped = fromStandardInput || !io.standardInputIsTerminal()
        let password = piped ? try readStandardInput(io) : try prompt("Password: ", io)
        guard !password.isEmpty else { throw .failure("empty password refused") }
        return password
    }

    private static func readStandardInput(_ io: CommandIO) throws(CLIError) -> Secret {
        do {
            guard let line = try io.readStandardInputLine() else {
                throw CLIError.failure("--password-stdin: standard input is empty; pipe the password in as one line")
            }
            return line
        } catch let e as CLIError {
            throw e
        } catch {
            throw .failure("cannot read the password from standard input: \(error)")
        }
    }

    private static func prompt(_ text: String, _ io: CommandIO) throws(CLIError) -> Secret {
        do {
            return try io.readHiddenFromTerminal(text)
        } catch let e as CLIError {
            throw e
        } catch {
            throw .failure("cannot read the password from the terminal: \(error)")
        }
    }
}
