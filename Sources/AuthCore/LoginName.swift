/// How a login name divides into its local part and realm: at the last `@`, as Dovecot does
/// (`alice@example.org`; `a@b@example.org` has the local part `a@b`). A name without `@` is all local part.
public enum LoginName {
    /// The local part and the realm (nil when there is no `@`), both as they appear in `name`. The search
    /// is on the UTF-8 bytes, so an `@` is found whatever follows it (a combining mark cannot hide it).
    public static func split(_ name: String) -> (local: Substring, realm: Substring?) {
        guard let at = name.utf8.lastIndex(of: UInt8(ascii: "@")) else { return (name[...], nil) }
        return (name[..<at], name[name.utf8.index(after: at)...])
    }
}
