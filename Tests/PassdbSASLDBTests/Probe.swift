import Testing
import Foundation
@Test func probeArgs() {
    print("ARGS:", CommandLine.arguments)
    print("EXE:", (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "?")
    print("ENV:", ProcessInfo.processInfo.environment["PROBE"] ?? "-")
}
