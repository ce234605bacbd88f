// swift-tools-version:6.0
// libFuzzer targets for saslgate's pure parsers. A package of its own so that the main build (and CI's
// plain `swift build`) never sees fuzzer flags. The library targets are symlinks into ../Sources
// (SwiftPM wants target paths inside the package), so the fuzzers always test the current code.
//
// Build and run with Fuzz/run (it knows the flags); by hand:
//   swift build --package-path Fuzz -c debug \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   SWIFT_BACKTRACE=enable=no Fuzz/.build/debug/FuzzProtocol -dict=Fuzz/dict/protocol.dict CORPUS_DIR
// libFuzzer supplies `main`; each executable only defines `LLVMFuzzerTestOneInput`.
import PackageDescription

let package = Package(
    name: "saslgate-fuzz",
    dependencies: [
        // Same floor as the main package (../Package.swift).
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.0")
    ],
    targets: [
        .target(name: "AuthCore", path: "Sources/AuthCore"),
        .target(name: "AuthProtocol", dependencies: ["AuthCore"], path: "Sources/AuthProtocol"),
        .target(
            name: "AuthCrypto",
            dependencies: [
                "AuthCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Sources/AuthCrypto"
        ),
        .target(name: "SASL", dependencies: ["AuthCore", "AuthCrypto"], path: "Sources/SASL"),
        // LLVMFuzzerRunDriver from the libFuzzer runtime that -sanitize=fuzzer links.
        .systemLibrary(name: "CLibFuzzer", path: "Sources/CLibFuzzer"),
        // ClientMessageParser.parse, AuthCommand.initialResponse, TabEscape and DovecotBase64
        // round trips, ServerMessage single-line property, the client codec (ServerLine/ServerReply
        // agreement, ClientLineEncoder round trip).
        .executableTarget(name: "FuzzProtocol", dependencies: ["AuthProtocol", "AuthCore", "CLibFuzzer"]),
        // Every SASL mechanism's state machine fed arbitrary client messages (see the input format
        // in Sources/FuzzMechanisms/FuzzMechanisms.swift).
        .executableTarget(
            name: "FuzzMechanisms",
            dependencies: ["SASL", "AuthCrypto", "AuthCore", "CLibFuzzer"]
        ),
    ]
)
