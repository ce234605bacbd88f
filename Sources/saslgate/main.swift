import AdminCommands

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

exit(SaslgateMain.run(arguments: Array(CommandLine.arguments.dropFirst())))
