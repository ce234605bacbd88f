public import AuthCore

/// One AUTH parameter as a client writes it: `name=value`, or the bare `name` of a flag (`secured`).
public struct AuthParameter: Sendable, Equatable {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }
}

/// The lines an auth client sends (docs/PROTOCOL.md §1.3, §2.1, §2.4, §2.7), the other half of
/// `ClientMessageParser`. Every function appends whole fields to a caller's buffer, so a client can
/// batch lines, and a buffer that carried a response can be wiped: responses are base64-encoded
/// straight into it. Values are tab-escaped; nothing here allocates beyond the buffer's growth.
public enum ClientLineEncoder {
    /// `VERSION\t1\t<minor>`. The minor a client announces changes what an empty `resp=` means (§2.2).
    public static func version(minor: UInt32 = ProtocolLimits.minorVersion, into out: inout [UInt8]) {
        word("VERSION\t", into: &out)
        DecimalNumber.append(ProtocolLimits.majorVersion, to: &out)
        out.append(tab)
        DecimalNumber.append(minor, to: &out)
        out.append(lf)
    }

    /// `CPID\t<pid>`; the server refuses 0.
    public static func cpid(_ pid: UInt32, into out: inout [UInt8]) {
        word("CPID\t", into: &out)
        DecimalNumber.append(pid, to: &out)
        out.append(lf)
    }

    /// A whole AUTH line: the parameters in the order given, then `resp=` when there is an initial
    /// response. Give `service` (the server refuses a request without it).
    public static func auth(
        id: UInt32, mechanism: String, parameters: [AuthParameter], initialResponse: UnsafeBufferPointer<UInt8>?,
        into out: inout [UInt8]
    ) {
        authStart(id: id, mechanism: mechanism, into: &out)
        for p in parameters {
            if let value = p.value {
                parameter(p.name, value: value, into: &out)
            } else {
                parameter(p.name, into: &out)
            }
        }
        authEnd(initialResponse: initialResponse, into: &out)
    }

    // MARK: an AUTH line in parts, for writers that make many (the load generator)

    /// `AUTH\t<id>\t<mechanism>`. Follow with `parameter` calls and finish with `authEnd`.
    public static func authStart(id: UInt32, mechanism: String, into out: inout [UInt8]) {
        word("AUTH\t", into: &out)
        DecimalNumber.append(id, to: &out)
        out.append(tab)
        TabEscape.escape(mechanism.utf8, into: &out)
    }

    /// `\t<name>`: a flag such as `secured`.
    public static func parameter(_ name: String, into out: inout [UInt8]) {
        out.append(tab)
        TabEscape.escape(name.utf8, into: &out)
    }

    /// `\t<name>=<value>`, the value escaped.
    public static func parameter(_ name: String, value: String, into out: inout [UInt8]) {
        var value = value
        value.withUTF8 { parameter(name, value: $0, into: &out) }
    }

    /// The same with the value's bytes (the load generator makes them without a String).
    public static func parameter(_ name: String, value: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        parameter(name, into: &out)
        out.append(UInt8(ascii: "="))
        TabEscape.escape(value, into: &out)
    }

    /// `\tresp=<base64>` when there is an initial response, then the LF. An empty response is written
    /// `resp==`, which every server reads as "empty" whatever minor the client announced (§2.2).
    public static func authEnd(initialResponse: UnsafeBufferPointer<UInt8>?, into out: inout [UInt8]) {
        if let initialResponse {
            word("\tresp=", into: &out)
            if initialResponse.isEmpty {
                out.append(UInt8(ascii: "="))
            } else {
                Base64.append(initialResponse, to: &out)
            }
        }
        out.append(lf)
    }

    // MARK: the rest of a request's life

    /// `CONT\t<id>\t<base64 of response>`; an empty response leaves the data field empty (§2.4).
    public static func cont(id: UInt32, response: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        word("CONT\t", into: &out)
        DecimalNumber.append(id, to: &out)
        out.append(tab)
        Base64.append(response, to: &out)
        out.append(lf)
    }

    /// `CANCEL\t<id>`.
    public static func cancel(id: UInt32, into out: inout [UInt8]) {
        word("CANCEL\t", into: &out)
        DecimalNumber.append(id, to: &out)
        out.append(lf)
    }

    // MARK: bytes

    private static let tab = UInt8(ascii: "\t")
    private static let lf = UInt8(ascii: "\n")

    private static func word(_ text: StaticString, into out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }
}
