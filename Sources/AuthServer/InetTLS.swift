import AuthConfig
import AuthCore
import NIOSSL

/// TLS for the TCP endpoints (`inet_tls_cert`, `inet_tls_key`): the server context, made from the PEM
/// files at start-up (before the privileges are dropped) and again on each reload.
enum InetTLS {
    /// Larger certificate or key files are refused (a chain of a few certificates is a few KiB).
    static let maxFileSize = 1 << 20

    /// An encrypted key cannot be used: the daemon has nobody to ask for the passphrase.
    private struct EncryptedKey: Error {}

    /// The server context, nil when TLS is not configured. The key file must not be readable or
    /// writable by everyone (like the passdb files); every problem names the key's `file:line`.
    static func context(_ settings: Settings) throws(ConfigErrors) -> NIOSSLContext? {
        guard let certPath = settings.inetTlsCert, let keyPath = settings.inetTlsKey else { return nil }
        let certLine = settings.lines["inet_tls_cert"]
        let keyLine = settings.lines["inet_tls_key"]
        func problem(_ line: Int?, _ text: String) -> ConfigErrors {
            ConfigErrors([ConfigError(file: settings.file, line: line, text)])
        }
        do {
            try FileSafety.checkSecretFile(keyPath, what: "the TLS private key (inet_tls_key)")
        } catch {
            throw problem(keyLine, "\(error)")
        }
        let certificates: [NIOSSLCertificate]
        switch readSmallFile(certPath, limit: maxFileSize) {
        case .failure(let why):
            throw problem(certLine, "inet_tls_cert \(certPath): cannot read: \(why)")
        case .success(let bytes):
            do {
                certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
            } catch {
                throw problem(certLine, "inet_tls_cert \(certPath): not a PEM certificate chain (\(error))")
            }
        }
        guard !certificates.isEmpty else {
            throw problem(certLine, "inet_tls_cert \(certPath) holds no certificate; give a PEM file with the server certificate first, then its intermediates")
        }
        let key: NIOSSLPrivateKey
        switch readSmallFile(keyPath, limit: maxFileSize) {
        case .failure(let why):
            throw problem(keyLine, "inet_tls_key \(keyPath): cannot read: \(why)")
        case .success(var bytes):
            defer { bytes.wipe() }
            do {
                key = try NIOSSLPrivateKey(bytes: bytes, format: .pem) { (_: NIOSSLPassphraseSetter<[UInt8]>) throws in
                    throw EncryptedKey()
                }
            } catch is EncryptedKey {
                throw problem(keyLine, "inet_tls_key \(keyPath) is encrypted; give an unencrypted PEM key (openssl pkey -in KEY -out KEY.plain), readable only by root and run_user's group")
            } catch {
                throw problem(keyLine, "inet_tls_key \(keyPath): not a PEM private key (\(error))")
            }
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificates.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw problem(keyLine, "inet_tls_cert and inet_tls_key cannot be used together (\(error)); is the key the certificate's?")
        }
    }
}
