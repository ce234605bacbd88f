// libFuzzer target: the Dovecot auth-client wire format (Sources/AuthProtocol).
//
// One input = one client line (what LineFramer hands to the engine, without the LF).
// Checked on every input:
//  1. ClientMessageParser.parse never traps, whatever the bytes (it either returns a message or
//     throws a ProtocolViolation).
//  2. For a parsed AUTH: initialResponse(clientMinor:) for minors 0, 1, 2 and 3 never traps, and a
//     decoded response re-encodes to something that decodes to the same bytes; mechanismKey works.
//  3. A trailing CR is ignored: parse(x + CR) == parse(x) when x does not already end in CR.
//  4. TabEscape: unescape(escape(x)) == x, and escape(x) contains no TAB, CR, LF or NUL (a value can
//     never split or end a protocol line); unescape(x) of arbitrary bytes never traps.
//  5. DovecotBase64: decode(encode(x)) == x, encode's length is 4*ceil(n/3); decode(x) of arbitrary
//     bytes never traps, and when it succeeds, decode(encode(decode(x))) == decode(x).
//  6. AuthCore's strict codecs (stored secrets, SASL attribute values): Base64.decode(encode(x)) == x
//     (plain and canonical), a canonical decode re-encodes to exactly its input (one encoding per
//     byte string), whatever the strict decoder accepts DovecotBase64 decodes to the same bytes, and
//     Hex.decode(encode(x)) == x with encode all lower case; arbitrary input never traps.
//  7. A ServerMessage (FAIL) carrying the input as user, reason and field value encodes to exactly
//     one line (one LF, at the end) of five TAB-separated fields that unescape back to the values.
//  8. The client codec: ServerLine.parse of the input never traps, and agrees with the allocation-free
//     ServerReply.parse on the kind and id of every reply; an AUTH line written by ClientLineEncoder
//     with the input as service and initial response is one line that ClientMessageParser reads back
//     to the same service and response.
// A violated property calls fatalError, which libFuzzer reports as a crash.

import AuthCore
import AuthProtocol
import CLibFuzzer

#if canImport(Glibc)
    import Glibc
#endif

/// SASLGATE_FUZZ_SELFTEST=1 plants a bug (the line `CPID\t4583`, a committed seed, traps) so that
/// Fuzz/run's crash handling can be checked: `SASLGATE_FUZZ_SELFTEST=1 bash Fuzz/run --target
/// FuzzProtocol` must fail and keep the input.
let selfTest = getenv("SASLGATE_FUZZ_SELFTEST") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtocol(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    if selfTest, bytes == Array("CPID\t4583".utf8) { fatalError("planted crash (SASLGATE_FUZZ_SELFTEST)") }
    checkParser(bytes)
    checkTabEscape(bytes)
    checkBase64(bytes)
    checkCodecs(bytes)
    checkServerMessages(bytes)
    checkClientCodec(bytes)
    return 0
}

private func parseResult(_ bytes: [UInt8]) -> Result<ClientMessage, ProtocolViolation> {
    do throws(ProtocolViolation) {
        return .success(try ClientMessageParser.parse(bytes))
    } catch {
        return .failure(error)
    }
}

private func checkParser(_ bytes: [UInt8]) {
    let result = parseResult(bytes)
    // The slice entry point (what the engine calls) must agree with the array one, also for a slice
    // that does not start at index 0.
    let padded = [UInt8(ascii: "x")] + bytes
    let sliceResult: Result<ClientMessage, ProtocolViolation>
    do throws(ProtocolViolation) {
        sliceResult = .success(try ClientMessageParser.parse(padded[1...]))
    } catch {
        sliceResult = .failure(error)
    }
    guard result == sliceResult else { fatalError("parse([UInt8]) and parse(ArraySlice) disagree") }

    if bytes.last != UInt8(ascii: "\r") {
        guard parseResult(bytes + [UInt8(ascii: "\r")]) == result else {
            fatalError("a trailing CR changed the parse result")
        }
    }

    guard case .success(let message) = result else { return }
    switch message {
    case .auth(let command):
        _ = command.mechanismKey
        for minor: UInt32 in [0, 1, 2, 3] {
            switch command.initialResponse(clientMinor: minor) {
            case .absent:
                guard command.rawInitialResponse == nil || command.rawInitialResponse == [] else {
                    fatalError("a non-empty resp= was reported as absent")
                }
            case .invalidBase64:
                break
            case .bytes(let decoded):
                let again = DovecotBase64.decode(Base64.encode(decoded))
                guard again == decoded else { fatalError("initial response does not survive re-encoding") }
            }
        }
    case .cont(_, let payload):
        if let decoded = DovecotBase64.decode(payload) {
            guard DovecotBase64.decode(Base64.encode(decoded)) == decoded else {
                fatalError("CONT payload does not survive re-encoding")
            }
        }
    case .version, .cpid, .cancel:
        break
    }
}

private func checkTabEscape(_ bytes: [UInt8]) {
    let escaped = TabEscape.escape(bytes)
    guard !escaped.contains(where: { $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 == 0x00 }) else {
        fatalError("TabEscape.escape left a TAB, LF, CR or NUL")
    }
    guard TabEscape.unescape(escaped) == bytes else { fatalError("TabEscape round trip failed") }
    _ = TabEscape.unescape(bytes)
    // The String overload must agree with the byte one for valid UTF-8.
    if let string = String(validating: bytes, as: UTF8.self) {
        guard Array(TabEscape.escape(string).utf8) == escaped else {
            fatalError("TabEscape.escape(String) differs from escape(bytes)")
        }
    }
}

private func checkBase64(_ bytes: [UInt8]) {
    let encoded = Base64.encode(bytes)
    guard encoded.count == (bytes.count + 2) / 3 * 4 else { fatalError("base64 length is wrong") }
    guard DovecotBase64.decode(encoded) == bytes else { fatalError("DovecotBase64 round trip failed") }
    guard DovecotBase64.encode(bytes) == String(decoding: encoded, as: UTF8.self) else {
        fatalError("DovecotBase64.encode and Base64.encode differ")
    }
    if let decoded = DovecotBase64.decode(bytes) {
        guard DovecotBase64.decode(Base64.encode(decoded)) == decoded else {
            fatalError("decode(encode(decode(x))) != decode(x)")
        }
        guard decoded.count <= bytes.count else { fatalError("decoding grew the data") }
    }
}

private func checkCodecs(_ bytes: [UInt8]) {
    let encoded = Base64.encode(bytes)
    guard Base64.decode(encoded) == bytes, Base64.decode(encoded, canonical: true) == bytes else {
        fatalError("Base64 round trip failed")
    }
    if let lenient = Base64.decode(bytes) {
        guard DovecotBase64.decode(bytes) == lenient else { fatalError("Base64 and DovecotBase64 disagree") }
        if let canonical = Base64.decode(bytes, canonical: true) {
            guard canonical == lenient, Base64.encode(canonical) == bytes else {
                fatalError("a canonical base64 decode does not re-encode to its input")
            }
        }
    } else {
        guard Base64.decode(bytes, canonical: true) == nil else { fatalError("canonical accepts what plain refuses") }
    }
    let hex = Hex.encode(bytes)
    guard hex.count == bytes.count * 2, Hex.isLower(hex), Hex.decode(hex) == bytes else {
        fatalError("Hex round trip failed")
    }
    if let decoded = Hex.decode(bytes) {
        guard decoded.count * 2 == bytes.count else { fatalError("Hex.decode length is wrong") }
    }
}

private func checkServerMessages(_ bytes: [UInt8]) {
    let value = String(decoding: bytes, as: UTF8.self)
    let expected = Array(value.utf8)
    // FAIL\t2\tuser=V\treason=V\tx=V\n: the same escaping path as OK's user= and resp= fields.
    let line = ServerMessage.fail(id: 2, user: value, code: nil, reason: value, fields: [("x", value)]).encoded()
    guard line.last == 0x0A, line.firstIndex(of: 0x0A) == line.count - 1 else {
        fatalError("a server message is not exactly one line")
    }
    let fields = line.dropLast().split(separator: 0x09, omittingEmptySubsequences: false)
    guard fields.count == 5 else { fatalError("a value split a server message into extra fields") }
    for field in fields.dropFirst(2) {
        guard let eq = field.firstIndex(of: UInt8(ascii: "=")),
            TabEscape.unescape(field[(eq + 1)...]) == expected
        else { fatalError("a server message field does not unescape to its value") }
    }
}

private func checkClientCodec(_ bytes: [UInt8]) {
    let typed: ServerLine? = try? ServerLine.parse(bytes)
    let located = bytes.withUnsafeBufferPointer { ServerReply.parse($0) }
    if bytes.last != UInt8(ascii: "\r"), let located {
        switch (located.kind, typed) {
        case (.ok, .ok(let id, _)?), (.fail, .fail(let id, _)?), (.cont, .cont(let id, _)?):
            guard id == located.id else { fatalError("ServerReply and ServerLine disagree on the id") }
        default:
            fatalError("ServerReply and ServerLine disagree on the kind")
        }
    }

    var line: [UInt8] = []
    let service = String(decoding: bytes, as: UTF8.self)
    bytes.withUnsafeBufferPointer {
        ClientLineEncoder.auth(
            id: 1, mechanism: "PLAIN", parameters: [AuthParameter("service", service)], initialResponse: $0, into: &line)
    }
    guard line.last == 0x0A, line.firstIndex(of: 0x0A) == line.count - 1 else {
        fatalError("an AUTH line is not exactly one line")
    }
    guard line.count - 1 <= ProtocolLimits.maxLineLength else { return }  // the server refuses longer lines
    guard case .auth(let command)? = try? ClientMessageParser.parse(Array(line.dropLast())) else {
        fatalError("ClientMessageParser refuses an AUTH line ClientLineEncoder wrote")
    }
    guard command.service == service, command.initialResponse(clientMinor: 0) == .bytes(bytes) else {
        fatalError("an AUTH line does not read back to what was written")
    }
}

// MARK: entry point

/// SwiftPM links an executable with `main` renamed to `FuzzProtocol_main`, so libFuzzer's own `main` cannot be
/// the entry point; this one hands the command line to libFuzzer's driver, which is what libFuzzer's
/// `main` does (all libFuzzer flags work as usual).
@main
enum FuzzProtocolMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzProtocol))
    }
}
