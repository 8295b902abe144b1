#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import HikyakuSystem
import Logging

/// How much privilege a program keeps.
public enum PrivilegeModel: Sendable {
    /// Run as `mail_owner`, chrooted to the spool when `chroot` is true.
    case mailOwner(chroot: Bool)
    /// Stay root (local only: it becomes each recipient per delivery).
    case root
}

/// What every program gets from the skeleton.
public struct DaemonContext: Sendable {
    public let program: String
    public let configuration: Configuration
    /// The spool as this process sees it (`/` inside the chroot).
    public let spool: SpoolLayout
    /// The spool's real path, for log messages and for programs outside the chroot.
    public let spoolPath: String
    /// Listening sockets from the master, in the order of its service table.
    public let listenFDs: [Int32]
    /// What each listening socket is for (smtpd: `smtp`, `submission`,
    /// `smtps`), from `HIKYAKU_LISTEN_ROLES`; empty when not given.
    public var listenRoles: [String] = []
    /// The master's control pipe: a byte `R` asks for a graceful exit (reload),
    /// `S` for a stop; end of file means the master is gone.
    public let controlFD: Int32?
    public let underMaster: Bool
    public let chrooted: Bool
    /// False when run by an ordinary user: no privilege separation at all.
    public let privilegeSeparated: Bool
    public let logger: Logger

    /// The listening socket of a program that serves one: the first the
    /// master passed. Without one there is nothing to serve, and the
    /// program exits 1 saying so.
    public func listenFD() -> Int32 {
        guard let fd = listenFDs.first else {
            logger.critical("\(program) needs a listening socket from the master")
            exit(1)
        }
        return fd
    }
}

/// The skeleton every daemon's main calls, in Postfix's order: arguments,
/// logging, configuration, pre-jail hook, sandbox, serve.
///
/// Arguments: `-c FILE` (configuration), `-v` (debug logging). The master
/// passes `HIKYAKU_MASTER=1`, `HIKYAKU_LISTEN_FDS=N` (sockets at fd 4...)
/// and its control pipe at fd 3.
public enum DaemonSkeleton {
    public static let controlFD: Int32 = 3
    public static let firstListenFD: Int32 = 4

    public static func main<State>(
        program: String,
        privilege: PrivilegeModel,
        preJail: (DaemonContext) throws -> State,
        serve: (DaemonContext, State) throws -> Void
    ) -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        var configPath: String? = nil
        var verbose = false
        var index = 0
        while index < arguments.count {
            switch arguments[index] {
            case "-c" where index + 1 < arguments.count:
                configPath = arguments[index + 1]
                index += 1
            case "-v":
                verbose = true
            default:
                break
            }
            index += 1
        }
        let underMaster = getenv("HIKYAKU_MASTER") != nil
        MailLog.bootstrap(program: program, underMaster: underMaster, verbose: verbose)
        let logger = Logger(label: program)

        // SIGPIPE would kill a daemon whose peer went away; errors are handled.
        signal(SIGPIPE, SIG_IGN)
        WallClock.prepareTimeZone()
        if case .mailOwner = privilege { raiseOpenFileLimit(logger: logger) }

        let configuration: Configuration
        do {
            configuration = try ConfigurationLoader.load(path: configPath)
        } catch {
            logger.critical("\(error)")
            exit(1)
        }

        let listenCount = getenv("HIKYAKU_LISTEN_FDS").flatMap { Int(String(cString: $0)) } ?? 0
        let listenFDs = (0..<listenCount).map { firstListenFD + Int32($0) }
        let listenRoles = getenv("HIKYAKU_LISTEN_ROLES").map { String(cString: $0).split(separator: ",").map(String.init) } ?? []
        let spoolPath = configuration.string("queue_directory")
        let isRoot = Privilege.isRoot

        var chrooted = false
        var target: PasswdEntry? = nil
        if isRoot, case .mailOwner(let wantChroot) = privilege {
            let owner = configuration.string("mail_owner")
            guard let entry = PasswdEntry.lookup(name: owner) else {
                logger.critical("mail_owner \(owner): no such user")
                exit(1)
            }
            guard entry.uid != 0 else {
                logger.critical("mail_owner \(owner) has uid 0; refusing to run daemons as root")
                exit(1)
            }
            target = entry
            chrooted = wantChroot
        }

        var preContext = DaemonContext(
            program: program, configuration: configuration,
            spool: SpoolLayout(root: spoolPath), spoolPath: spoolPath,
            listenFDs: listenFDs, controlFD: underMaster ? controlFD : nil,
            underMaster: underMaster, chrooted: false, privilegeSeparated: isRoot, logger: logger)
        preContext.listenRoles = listenRoles

        let state: State
        do {
            state = try preJail(preContext)
        } catch {
            logger.critical("\(error)")
            exit(1)
        }

        // The sandbox: after this the process never regains root. It runs
        // before any thread starts (the check inside enforces it).
        if let target {
            do {
                try Privilege.dropPermanently(
                    to: Privilege.Identity(name: target.name, uid: target.uid, gid: target.gid, groups: [target.gid]),
                    chrootDirectory: chrooted ? spoolPath : nil)
            } catch {
                logger.critical("cannot drop privileges: \(error)")
                exit(1)
            }
        } else if isRoot, case .root = privilege {
            do { try Privilege.clearSupplementaryGroups() } catch {
                logger.critical("\(error)")
                exit(1)
            }
        }

        var context = DaemonContext(
            program: program, configuration: configuration,
            spool: SpoolLayout(root: chrooted ? "/" : spoolPath), spoolPath: spoolPath,
            listenFDs: listenFDs, controlFD: underMaster ? controlFD : nil,
            underMaster: underMaster, chrooted: chrooted, privilegeSeparated: isRoot, logger: logger)
        context.listenRoles = listenRoles
        do {
            try serve(context, state)
        } catch {
            logger.critical("\(error)")
            exit(1)
        }
        exit(0)
    }

    /// The programs that run as `mail_owner` hold a descriptor per client
    /// (smtpd one per session, thousands at once; cleanup, qmgr, aliasd one
    /// per connection from those), so their soft limit on open files is
    /// raised to the hard limit: a service manager typically starts them
    /// with 1024, and a hard limit far above it (systemd: 524288). local,
    /// which runs users' commands, keeps the limit it was given.
    static func raiseOpenFileLimit(logger: Logger) {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let wanted = limit.rlim_max
        limit.rlim_cur = wanted
        if setrlimit(resource, &limit) != 0 {
            logger.warning("cannot raise the open file limit to \(wanted): \(String(cString: strerror(errno)))")
        }
    }
}
