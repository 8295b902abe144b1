#if canImport(Glibc)
import Glibc
#endif
import CResolv

/// The addresses of this host's network interfaces, for a
/// ``LocalIdentity`` when smtpd listens on every address. Call it before
/// the chroot, with the rest of the set-up, so that one identity serves the
/// process's whole life.
public enum LocalInterfaces {
    public static func addresses() throws(DNSResolverError) -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0 else {
            throw DNSResolverError(.resolverSetup, "getifaddrs failed: \(systemErrorText(errno))")
        }
        defer { freeifaddrs(list) }
        var found: [IPAddress] = []
        var entry = list
        while let current = entry {
            switch hk_ifaddr_family(current) {
            case AF_INET:
                current.pointee.ifa_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                    let bytes = withUnsafeBytes(of: v4.pointee.sin_addr) { Array($0) }
                    if let address = IPAddress(bytes: bytes) { found.append(address) }
                }
            case AF_INET6:
                current.pointee.ifa_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                    let bytes = withUnsafeBytes(of: v6.pointee.sin6_addr) { Array($0) }
                    if let address = IPAddress(bytes: bytes) { found.append(address) }
                }
            default:
                break
            }
            entry = current.pointee.ifa_next
        }
        var unique: [IPAddress] = []
        for address in found where !unique.contains(address) { unique.append(address) }
        return unique
    }
}
