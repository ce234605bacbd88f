public import AuthConfig
public import PassdbRegistry

/// The daemon's settings as the CLI needs them (the table, the socket, the realm policy), read with the
/// daemon's own parser so both agree on every value and report the same `file:line` errors.
public struct ConfigLookup: Sendable, Equatable {
    /// Default location of the daemon's configuration.
    public static let defaultPath = Settings.defaultPath
    /// `listen` when the file does not set it (the daemon's default).
    public static let defaultListen = Settings().listen.first?.description ?? "/var/spool/postfix/private/auth"

    /// Path of the config file read.
    public var path: String
    public var settings: Settings

    /// Reads, parses and validates `path`.
    public static func load(path: String) throws(CLIError) -> ConfigLookup {
        do {
            let settings = try Settings.load(path: path, passdbDrivers: PassdbRegistry.catalog)
            return ConfigLookup(path: settings.file, settings: settings)
        } catch {
            throw .failure("\(error)")
        }
    }

    public static func parse(_ text: String, path: String) throws(CLIError) -> ConfigLookup {
        do {
            return ConfigLookup(
                path: path, settings: try Settings.parse(text: text, file: path, passdbDrivers: PassdbRegistry.catalog))
        } catch {
            throw .failure("\(error)")
        }
    }

    /// The first entry of `passdbs` that `saslgate user` can edit, with its editor (the path is
    /// already absolute).
    public func firstEditableStore() throws(CLIError) -> (spec: PassdbSpec, editor: PassdbDriver.UserEditor) {
        for spec in settings.passdbs {
            if let editor = PassdbRegistry.driver(named: spec.driver)?.userEditor { return (spec, editor) }
        }
        let names = PassdbRegistry.editableDrivers.map { "\($0.name):" }.joined(separator: " or ")
        throw .failure("\(path): 'passdbs' has no \(names) entry; give the store with --db")
    }

    /// The endpoint the CLI talks to: the first Unix socket of `listen` (already absolute), else the
    /// first `inet:HOST:PORT`.
    public var listenPath: String {
        settings.unixListenPaths.first ?? settings.listen.first?.description ?? Self.defaultListen
    }

    /// `default_realm`, nil when unset.
    public var defaultRealm: String? { settings.defaultRealm }
}
