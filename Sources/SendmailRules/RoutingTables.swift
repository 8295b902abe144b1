/// Everything sendmail's rulesets consult: the classes (w: local host names,
/// R: relay domains, VirtHost: virtual domains) and the maps.
public struct RoutingTables: Sendable {
    public var localDomains: Set<String>
    public var relayDomains: Set<String>
    public var virtualDomains: Set<String>
    public var access: MapTable
    public var virtusertable: MapTable
    public var mailertable: MapTable
    public var domaintable: MapTable
    /// Where each class member came from, for explanations.
    public var classSources: [String: String]
    /// sendmail's SMART_HOST: the host field for mail to other domains that
    /// mailertable does not route (`[relay.example.net]:587`), or empty.
    public var smartHost: String

    public init(localDomains: Set<String>, relayDomains: Set<String> = [], virtualDomains: Set<String> = [],
                access: MapTable = .empty("access"), virtusertable: MapTable = .empty("virtusertable"),
                mailertable: MapTable = .empty("mailertable"), domaintable: MapTable = .empty("domaintable"),
                classSources: [String: String] = [:], smartHost: String = "") {
        self.localDomains = Set(localDomains.map { $0.lowercasedASCII })
        self.relayDomains = Set(relayDomains.map { $0.lowercasedASCII })
        self.virtualDomains = Set(virtualDomains.map { $0.lowercasedASCII })
        self.access = access
        self.virtusertable = virtusertable
        self.mailertable = mailertable
        self.domaintable = domaintable
        self.classSources = classSources
        self.smartHost = smartHost
    }

    static func normalized(_ domain: String) -> String {
        var d = domain.lowercasedASCII
        while d.hasSuffix(".") { d.removeLast() }
        return d
    }

    /// Class w: exactly one of our names.
    public func isLocal(_ domain: String) -> Bool {
        localDomains.contains(Self.normalized(domain))
    }

    /// Class R: a relay domain or any subdomain of one.
    public func isRelayDomain(_ domain: String) -> Bool {
        let d = Self.normalized(domain)
        return relayDomains.contains { d == $0 || d.hasSuffix("." + $0) }
    }

    /// Local or virtual: mail for it ends here, so virtusertable applies.
    public func isVirtual(_ domain: String) -> Bool {
        virtualDomains.contains(Self.normalized(domain))
    }

    /// The local host names sendmail always has in class w besides the file:
    /// the full and short host name, localhost, and the loopback literal.
    public static func defaultLocalNames(hostname: String) -> Set<String> {
        var names: Set<String> = ["localhost", "[127.0.0.1]", hostname.lowercasedASCII]
        if let short = hostname.split(separator: ".").first { names.insert(String(short).lowercasedASCII) }
        return names
    }
}
