import AsyncHTTPClient
import NIOCore

/// One HTTP answer, its body bounded.
struct HTTPReply: Sendable {
    var status: Int
    var body: [UInt8]
}

/// The HTTP the passdb needs: a GET for a JWKS, a form POST for introspection. A protocol so that tests
/// can answer without a server.
protocol HTTPFetcher: Sendable {
    func get(_ url: String) async throws -> HTTPReply
    func postForm(_ url: String, form: [(String, String)], basicAuth: (user: String, password: String)?) async throws
        -> HTTPReply
    func shutdown() async
}

/// async-http-client with the passdb's bounds: no redirects (a JWKS or introspection URL is configured
/// exactly), connect and read timeouts, the whole exchange within `timeout`, bodies of at most 1 MiB.
final class AsyncHTTPFetcher: HTTPFetcher {
    static let maxBody = 1 << 20
    private let client: HTTPClient
    private let timeout: TimeAmount

    init(timeout seconds: Double) {
        let amount = TimeAmount.milliseconds(Int64(seconds * 1000))
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: amount, read: amount))
        configuration.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        timeout = amount
    }

    func get(_ url: String) async throws -> HTTPReply {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        return try await run(request)
    }

    func postForm(_ url: String, form: [(String, String)], basicAuth: (user: String, password: String)?) async throws
        -> HTTPReply
    {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        if let basicAuth {
            // RFC 6749 §2.3.1: client id and secret form-encoded, then HTTP basic.
            let pair = formEncode(basicAuth.user) + ":" + formEncode(basicAuth.password)
            request.headers.add(name: "Authorization", value: "Basic " + base64Encode(Array(pair.utf8)))
        }
        let body = form.map { formEncode($0.0) + "=" + formEncode($0.1) }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        return try await run(request)
    }

    private func run(_ request: HTTPClientRequest) async throws -> HTTPReply {
        let response = try await client.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: Self.maxBody)
        return HTTPReply(status: Int(response.status.code), body: Array(body.readableBytesView))
    }

    func shutdown() async {
        try? await client.shutdown()
    }
}

/// `application/x-www-form-urlencoded` of one value (RFC 3986 unreserved characters kept).
func formEncode(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = Array("0123456789ABCDEF".utf8)
            out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
        }
    }
    return out
}

/// Standard base64 with padding.
func base64Encode(_ bytes: [UInt8]) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
        out.append(table[Int(b0 >> 2)])
        out.append(table[Int((b0 & 0x03) << 4 | b1 >> 4)])
        out.append(i + 1 < bytes.count ? table[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
        out.append(i + 2 < bytes.count ? table[Int(b2 & 0x3F)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
