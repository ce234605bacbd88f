import ArgumentParser
import AuthConfig
import AuthServer

/// `saslgated`: the Dovecot-protocol SASL authentication daemon for Postfix and Exim.
@main
struct SaslgatedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saslgated",
        abstract: "SASL authentication daemon speaking the Dovecot auth protocol (Postfix smtpd_sasl_type = dovecot).",
        discussion: "Logs to stderr (journald under systemd). SIGHUP reloads the configuration; SIGTERM stops.")

    @Option(name: [.customShort("c"), .customLong("config")], help: "Configuration file.")
    var config: String = Settings.defaultPath

    @Flag(name: .customLong("check"), help: "Validate the configuration, show what would be served, and exit.")
    var check = false

    func run() async throws {
        Daemon.disableCoreDumps()
        let status = check ? await Daemon.check(configPath: config) : await Daemon.run(configPath: config)
        if status != 0 { throw ExitCode(status) }
    }
}
