#if canImport(Glibc)
import Glibc
#endif

/// The names and addresses of an /etc/hosts file, read once before the
/// chroot: names found here answer before DNS, as Postfix's
/// `smtp_host_lookup = dns, native` lets `localhost` and hosts an
/// administrator pinned reach the delivery agent.
public struct HostsTable: Sendable, Equatable {
    /// Normalised name to its addresses, IPv4 first, each in file order.
    public private(set) var entries: [String: [IPAddress]]

    public init(entries: [String: [IPAddress]] = [:]) {
        self.entries = [:]
        for (name, addresses) in entries { add(addresses, for: name) }
    }

    /// hosts(5): an address, then the canonical name and aliases; `#` starts
    /// a comment. Lines whose address does not parse are skipped, as the C
    /// library skips them.
    public init(parsing text: String) {
        self.entries = [:]
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let address = IPAddress(parsing: fields[0]) else { continue }
            for name in fields.dropFirst() { add([address], for: String(name)) }
        }
    }

    mutating func add(_ addresses: [IPAddress], for name: String) {
        let key = DNSName.normalized(name)
        var list = entries[key] ?? []
        for address in addresses where !list.contains(address) { list.append(address) }
        entries[key] = list.filter { $0.family == .v4 } + list.filter { $0.family == .v6 }
    }

    /// Reads `path`; a missing file is an empty table, as for the C library.
    public static func load(path: String) throws(DNSResolverError) -> HostsTable {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return HostsTable() }
            throw DNSResolverError(.hostsFile, "cannot open \(path): \(systemErrorText(code))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw DNSResolverError(.hostsFile, "cannot read \(path): \(systemErrorText(errno))")
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            guard bytes.count <= 16 << 20 else {
                throw DNSResolverError(.hostsFile, "\(path) is larger than 16 MiB")
            }
        }
        return HostsTable(parsing: String(decoding: bytes, as: UTF8.self))
    }

    public func addresses(for name: String) -> [IPAddress]? {
        entries[DNSName.normalized(name)]
    }
}
