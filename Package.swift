// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "saslgate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "saslgated", targets: ["saslgated"]),
        .executable(name: "saslgate", targets: ["saslgate"]),
        .executable(name: "saslgate-bench", targets: ["saslgate-bench"]),
        // For the benchmark package in Benchmarks/ (docs/BENCHMARKS.md), which depends on this one by path.
        .library(name: "AuthCore", targets: ["AuthCore"]),
        .library(name: "AuthProtocol", targets: ["AuthProtocol"]),
        .library(name: "SASL", targets: ["SASL"]),
        .library(name: "AuthConfig", targets: ["AuthConfig"]),
        .library(name: "Passdb", targets: ["Passdb"]),
        .library(name: "AuthEngine", targets: ["AuthEngine"]),
        .library(name: "AuthServer", targets: ["AuthServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
    ],
    targets: [
        // Shared vocabulary: secrets and wiping, constant-time comparison, credential kinds, strict base64 and
        // hex, the user@realm split. No dependencies.
        .target(name: "AuthCore"),
        // The Dovecot auth-client wire format, both directions: framing limits, escaping, base64, the server's
        // parser and encoder and the client codec. No I/O.
        .target(name: "AuthProtocol", dependencies: ["AuthCore"]),
        // Password-derived secrets, one copy each: SCRAM keys (PBKDF2) and Dovecot's stored SCRAM form,
        // DIGEST-MD5 HA1 and digests, the CRAM-MD5 context. Used by mechanisms, passdbs and test clients.
        .target(
            name: "AuthCrypto",
            dependencies: [
                "AuthCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // SASL mechanisms as pure state machines: no sockets, no passdb types.
        .target(name: "SASL", dependencies: ["AuthCore", "AuthCrypto"]),
        // libxcrypt's <crypt.h> (crypt_rn, crypt_gensalt_rn).
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt"),
        // Password databases: the protocol, password schemes, the passwd-file table, the chain and its cache.
        .target(
            name: "Passdb",
            dependencies: [
                "AuthCore", "AuthConfig", "AuthCrypto", "CCrypt",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // prctl(2) (core dumps off) through fixed-argument wrappers.
        .systemLibrary(name: "CProcess", path: "Sources/CProcess"),
        // libpam's <security/pam_appl.h>.
        .systemLibrary(name: "CPAM", path: "Sources/CPAM"),
        // The PAM passdb: blocking PAM calls on a bounded pool of their own, with a timeout.
        .target(
            name: "PassdbPAM",
            dependencies: ["AuthCore", "Passdb", "CPAM", .product(name: "Logging", package: "swift-log")]
        ),
        // The LDAP passdb: OpenLDAP's libldap, blocking calls on a bounded pool of threads, a connection each.
        .systemLibrary(name: "CLDAP", path: "Sources/CLDAP"),
        .target(
            name: "PassdbLDAP",
            dependencies: ["AuthCore", "AuthConfig", "Passdb", "CLDAP", .product(name: "Logging", package: "swift-log")]
        ),
        // SQLite (the sasldb store) and Berkeley DB 5.3 (reading Cyrus sasldb2 files for import).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CBerkeleyDB", path: "Sources/CBerkeleyDB"),
        // The sasldb-like store: several secrets per user@realm in one SQLite file; Cyrus sasldb2 import.
        .target(
            name: "PassdbSASLDB",
            dependencies: [
                "AuthCore", "AuthCrypto", "Passdb", "CSQLite", "CBerkeleyDB",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The oauth2 passdb: bearer tokens (OAUTHBEARER, XOAUTH2) checked as JWTs against a JWKS file or URL,
        // or by RFC 7662 introspection.
        .target(
            name: "PassdbOAuth2",
            dependencies: [
                "AuthCore", "AuthConfig", "Passdb",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The PostgreSQL passdb: password_query with bound parameters, host failover, a pooled client.
        .target(
            name: "PassdbPgSQL",
            dependencies: [
                "AuthCore", "AuthConfig", "Passdb",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Configuration file (Postfix main.cf style) -> typed settings.
        .target(name: "AuthConfig", dependencies: ["AuthCore"]),
        // THE table of passdb drivers: name, argument, options, how to open one, CLI editing, groups.
        .target(
            name: "PassdbRegistry",
            dependencies: [
                "AuthConfig", "Passdb", "PassdbPAM", "PassdbSASLDB", "PassdbLDAP", "PassdbOAuth2", "PassdbPgSQL",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The request engine: one client connection's requests, mechanisms, delays.
        .target(
            name: "AuthEngine",
            dependencies: [
                "AuthCore", "AuthProtocol", "SASL", "Passdb", "AuthConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // NIO server: listener (path or systemd fd), framing, connection handler, lifecycle.
        .target(
            name: "AuthServer",
            dependencies: [
                "AuthCore", "AuthProtocol", "AuthEngine", "AuthConfig", "Passdb", "PassdbRegistry", "SASL",
                "CProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The admin CLI as a library (testable).
        .target(
            name: "AdminCommands",
            dependencies: [
                "AuthCore", "AuthProtocol", "Passdb", "AuthConfig", "AuthEngine", "PassdbSASLDB", "PassdbRegistry",
                "SASL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "saslgated",
            dependencies: [
                "AuthServer", "AuthConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "saslgate", dependencies: ["AdminCommands"]),
        // Load generator for any Dovecot-protocol auth socket (bench/compare), speaking through the client
        // codec of AuthProtocol.
        .systemLibrary(name: "CEpoll", path: "Sources/CEpoll"),
        .executableTarget(name: "saslgate-bench", dependencies: ["CEpoll", "AuthProtocol"]),

        .testTarget(name: "AuthCoreTests", dependencies: ["AuthCore"]),
        .testTarget(name: "AuthProtocolTests", dependencies: ["AuthProtocol", "AuthCore"]),
        .testTarget(
            name: "AuthCryptoTests",
            dependencies: ["AuthCrypto", "AuthCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "SASLTests", dependencies: ["SASL", "AuthCrypto", "AuthCore"]),
        .testTarget(
            name: "PassdbTests",
            dependencies: [
                "Passdb", "AuthCore", "AuthConfig", "PassdbTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Test doubles shared by several test targets (linked into no executable).
        .target(name: "PassdbTestSupport", dependencies: ["Passdb", "AuthCore"], path: "Sources/PassdbTestSupport"),
        .testTarget(
            name: "PassdbOAuth2Tests",
            dependencies: [
                "PassdbOAuth2", "Passdb", "AuthCore", "AuthConfig",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PassdbPgSQLTests", dependencies: ["PassdbPgSQL", "Passdb", "AuthCore", "AuthConfig"]),
        .testTarget(name: "PassdbPAMTests", dependencies: ["PassdbPAM", "Passdb", "AuthCore"]),
        .testTarget(name: "PassdbLDAPTests", dependencies: ["PassdbLDAP", "Passdb", "AuthConfig", "AuthCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "PassdbSASLDBTests", dependencies: ["PassdbSASLDB", "Passdb", "SASL", "AuthCrypto", "AuthCore"]
        ),
        .testTarget(name: "AuthConfigTests", dependencies: ["AuthConfig", "PassdbRegistry", "Passdb", "PassdbPAM"]),
        .testTarget(
            name: "AuthEngineTests",
            dependencies: [
                "AuthEngine", "AuthProtocol", "SASL", "AuthCrypto", "Passdb", "AuthConfig", "AuthCore", "PassdbRegistry",
                "PassdbTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "AdminCommandsTests",
            dependencies: [
                "AdminCommands", "Passdb", "AuthCore", "AuthProtocol", "AuthConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The NIO connection handler on an EmbeddedChannel: framing, flow control and closing, with no
        // socket and no clock but the event loop's own.
        .testTarget(
            name: "AuthServerTests",
            dependencies: [
                "AuthServer", "AuthEngine", "AuthConfig", "Passdb", "PassdbRegistry", "AuthProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["AuthProtocol", "AuthCore", "AuthCrypto", "SASL", "AuthServer", "AuthEngine"]
        ),
    ]
)
