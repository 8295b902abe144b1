import HikyakuConfig

extension ServiceDefinition.Listener: CustomStringConvertible {
    public var description: String {
        switch self {
        case .tcp(let address): address
        case .unix(let service): "private/\(service.rawValue)"
        case .publicUnix(let service): "public/\(service.rawValue)"
        }
    }
}

/// The programs the master runs, built from the configuration. hikyaku has
/// no master.cf: the table is fixed and its sizes are configuration keys.
public struct ServiceDefinition: Equatable, Sendable {
    public enum Listener: Hashable, Sendable {
        /// A TCP socket from `smtpd_listen`.
        case tcp(String)
        /// A Unix socket in private/.
        case unix(SpoolLayout.Service)
        /// A Unix socket in public/.
        case publicUnix(SpoolLayout.PublicService)
    }

    /// The program name: the executable in `daemon_directory` and the log tag.
    public var program: String
    public var processes: Int
    public var listeners: [Listener]
    /// At most one process may run, even during a reload (qmgr owns the queue).
    public var singleton: Bool
    /// What each listener is for, passed as HIKYAKU_LISTEN_ROLES (smtpd).
    public var listenerRoles: [String] = []

    public init(program: String, processes: Int, listeners: [Listener], singleton: Bool) {
        self.program = program
        self.processes = processes
        self.listeners = listeners
        self.singleton = singleton
    }

    /// smtpd serves port 25 (`smtpd_listen`), submission (587,
    /// `submission_listen`) and implicit TLS (465, `smtps_listen`). Sockets
    /// passed by systemd's socket activation (`inherited`: role and address)
    /// take the place of the configured addresses of their role.
    static func smtpd(_ configuration: Configuration, inherited: [(role: String, address: String)] = []) -> ServiceDefinition {
        var listeners: [Listener] = []
        var roles: [String] = []
        for (key, role) in [("smtpd_listen", "smtp"), ("submission_listen", "submission"), ("smtps_listen", "smtps")] {
            let passed = inherited.filter { $0.role == role }.map(\.address)
            for address in passed.isEmpty ? configuration.list(key) : passed {
                listeners.append(.tcp(address))
                roles.append(role)
            }
        }
        var definition = ServiceDefinition(program: "smtpd", processes: max(1, configuration.integer("smtpd_process_limit")),
                                           listeners: listeners, singleton: false)
        definition.listenerRoles = roles
        return definition
    }

    /// The services in start order: the map server first, the SMTP server last.
    public static func table(for configuration: Configuration,
                             inherited: [(role: String, address: String)] = []) -> [ServiceDefinition] {
        [
            ServiceDefinition(program: "aliasd", processes: 1, listeners: [.unix(.aliasd)], singleton: false),
            ServiceDefinition(program: "local", processes: max(1, configuration.integer("local_process_limit")),
                              listeners: [.unix(.local)], singleton: false),
            ServiceDefinition(program: "smtp-client", processes: 1, listeners: [.unix(.smtp)], singleton: false),
            ServiceDefinition(program: "cleanup", processes: 1, listeners: [.unix(.cleanup)], singleton: false),
            ServiceDefinition(program: "qmgr", processes: 1, listeners: [.unix(.qmgr)], singleton: true),
            ServiceDefinition(program: "pickup", processes: 1, listeners: [.publicUnix(.pickup)], singleton: true),
            ServiceDefinition(program: "showq", processes: 1, listeners: [.publicUnix(.showq)], singleton: false),
            smtpd(configuration, inherited: inherited),
        ]
    }
}
