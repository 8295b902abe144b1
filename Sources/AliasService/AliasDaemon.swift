#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import MailCore
import MapStore
import NIOCore
import NIOPosix
import SendmailRules

/// aliasd - the map server
///
/// Description: the one program that reads maps: the aliases, sendmail's
/// access, virtusertable, mailertable and domaintable maps (text, or the
/// compiled `.db` beside each while it is newer), local-host-names and
/// relay-domains. Over `private/aliasd` it answers where a recipient goes
/// (`resolve`), whether smtpd may accept it (`checkRecipient`, with
/// sendmail's access rules) and what a local alias expands to (`expand`, one
/// level). When a source or compiled file changes (checked at most once a
/// second) it reads everything again, between two requests, so no request
/// is lost or answered from half a map; a bad line is logged with file and
/// line and skipped.
///
/// Clients: smtpd (recipient checks), qmgr (routing), local (expansion).
///
/// Security: runs as `mail_owner`, not chrooted (maps live under /etc), and
/// only reads. It trusts the map files (root's) and nothing its clients send:
/// every request is a bounded frame, every address parsed.
///
/// Configuration: `alias_file`, `local_host_names_file`, `relay_domains_file`,
/// `access_map`, `virtusertable_map`, `mailertable_map`, `domaintable_map`,
/// `virtuser_domains`, `smtpd_delay_checks`, `myhostname`.
///
/// See also: local(8), smtpd(8), aliases(5), makemap(8).
public final class AliasDaemon: @unchecked Sendable {
    // Everything below is touched only on the single event loop.
    let configuration: Configuration
    let logger: Logger
    var decisions: RecipientDecisions
    /// trusted-users (sendmail's class t): may set another sender.
    var trustedUsers: Set<String> = []
    /// TCP wrappers' rules for smtpd's connect-time check.
    var hostsAccess = HostsAccess()
    var stamps: [String: FileStamp?] = [:]
    var lastCheck = 0.0

    struct FileStamp: Equatable {
        var inode: UInt64
        var size: Int
        var mtime: Int
        var mtimeNanoseconds: Int

        init?(path: String) {
            guard let st = FileIO.stat(path) else { return nil }
            inode = UInt64(st.st_ino)
            size = Int(st.st_size)
            mtime = st.st_mtim.tv_sec
            mtimeNanoseconds = st.st_mtim.tv_nsec
        }
    }

    public init(configuration: Configuration, logger: Logger) {
        let users = UserCache()
        self.configuration = configuration
        self.logger = logger
        decisions = RecipientDecisions(tables: RoutingTables(localDomains: []), aliases: AliasFile(),
                                       delayChecks: configuration.boolean("smtpd_delay_checks"),
                                       userExists: { [users] in users.user(named: $0) != nil })
        decisions.senderLoginCheck = configuration.boolean("smtpd_sender_login_check")
        reloadIfChanged(force: true)
    }

    /// Reads every map again when any source or compiled file changed.
    func reloadIfChanged(force: Bool = false) {
        let now = WallClock.monotonic()
        guard force || now - lastCheck >= 1 else { return }
        lastCheck = now
        var fresh: [String: FileStamp?] = [:]
        for path in MapLoader.sourceFiles(configuration) + hostsAccessFiles { fresh[path] = FileStamp(path: path) }
        guard force || fresh != stamps else { return }
        stamps = fresh
        let logger = self.logger
        decisions.tables = MapLoader.routingTables(configuration, previous: decisions.tables) { logger.warning("\($0)") }
        decisions.aliases = loadAliases()
        trustedUsers = Set(MapLoader.loadClass(path: configuration.string("trusted_users_file")).keys)
        hostsAccess = loadHostsAccess()
        if !force { logger.info("maps changed; reloaded") }
    }

    func loadAliases() -> AliasFile {
        let path = configuration.string("alias_file")
        let table = MapLoader.load(name: "aliases", sourcePath: path) { _ in } ?? MapTable(name: "aliases", path: path)
        if table.path.hasSuffix(".db") {
            let file = AliasFile(databaseEntries: table.entries.map { ($0.key, $0.value.value) })
            for problem in file.problems { logger.warning("\(table.path): \(problem)") }
            logger.info("\(table.path): \(file.entries.count) aliases loaded")
            return file
        }
        guard FileIO.stat(path) != nil else {
            logger.warning("\(path): cannot open; using no aliases")
            return AliasFile()
        }
        do {
            let text = String(decoding: try FileIO.readFile(path, limit: 64 << 20), as: UTF8.self)
            let file = AliasFile(text: text)
            for problem in file.problems { logger.warning("\(path): \(problem)") }
            logger.info("\(path): \(file.entries.count) aliases loaded")
            return file
        } catch {
            logger.warning("\(error); keeping the previous aliases")
            return decisions.aliases
        }
    }

    var hostsAccessFiles: [String] {
        [configuration.string("smtpd_hosts_allow_file"), configuration.string("smtpd_hosts_deny_file")].filter { !$0.isEmpty }
    }

    /// /etc/hosts.allow and /etc/hosts.deny; a missing file has no rules.
    func loadHostsAccess() -> HostsAccess {
        func read(_ path: String) -> String? {
            guard !path.isEmpty, let bytes = try? FileIO.readFile(path, limit: 4 << 20) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        let allow = configuration.string("smtpd_hosts_allow_file")
        let deny = configuration.string("smtpd_hosts_deny_file")
        let access = HostsAccess(allowPath: allow, allowText: read(allow), denyPath: deny, denyText: read(deny), readFile: read)
        for problem in access.problems { logger.warning("\(problem)") }
        return access
    }

    /// TCP wrappers for the daemon names smtpd and sendmail.
    func checkClient(_ request: AliasProtocol.RecipientCheck) -> IPCFrame {
        if request.clientResolve == "PENDING" && hostsAccess.needsClientName {
            return AliasProtocol.clientNameNeeded()
        }
        let known = request.clientResolve == "OK" && !request.clientName.hasPrefix("[")
        let client = HostsAccess.Client(address: request.clientAddress, name: known ? request.clientName : nil,
                                        paranoid: request.clientResolve == "FORGED")
        let decision = hostsAccess.decide(daemons: ["smtpd", "sendmail"], client: client)
        guard !decision.allowed else { return AliasProtocol.RecipientVerdict.accept.frame(explanation: []) }
        logger.info("tcpwrappers: \(request.clientAddress) denied by \(decision.rule ?? "a rule")")
        return AliasProtocol.RecipientVerdict.reject(SMTPReply(554, EnhancedStatusCode(5, 7, 1),
            "\(configuration.string("myhostname")) Access denied")).frame(explanation: [])
    }

    func handle(_ frame: IPCFrame) -> IPCFrame {
        reloadIfChanged()
        switch frame.type {
        case .aliasResolve:
            guard let address = frame.string(.address) else { return AliasProtocol.errorFrame("resolve without address") }
            return decisions.resolve(address).0.frame
        case .aliasExpand:
            guard let name = frame.string(.address) else { return AliasProtocol.errorFrame("expand without name") }
            let targets = decisions.expand(name)
            return AliasProtocol.Expansion(targets: targets, hints: hints(for: targets ?? [])).frame
        case .aliasCheckRecipient, .aliasCheckSender:
            guard let request = try? AliasProtocol.RecipientCheck(frame: frame) else {
                return AliasProtocol.errorFrame("bad recipient check")
            }
            let (verdict, steps) = frame.type == .aliasCheckSender ? decisions.checkSender(request) : decisions.check(request)
            for step in steps { logger.debug("check \(request.recipient): \(step)") }
            return verdict.frame(explanation: steps)
        case .aliasUser:
            guard let uid = frame.int(.size), uid >= 0 else { return AliasProtocol.errorFrame("user request without uid") }
            guard let entry = PasswdEntry.lookup(uid: uid_t(uid)) else {
                return AliasProtocol.User(name: "#\(uid)", trusted: false).frame
            }
            let trusted = entry.uid == 0 || entry.name == configuration.string("mail_owner") || trustedUsers.contains(entry.name.lowercased())
            return AliasProtocol.User(name: entry.name, trusted: trusted).frame
        case .aliasCheckClient:
            guard let request = try? AliasProtocol.RecipientCheck(frame: frame) else {
                return AliasProtocol.errorFrame("bad client check")
            }
            return checkClient(request)
        case .aliasDomainTable:
            return AliasProtocol.domainTableReply(decisions.tables.domaintable.entries.mapValues(\.value))
        default:
            return AliasProtocol.errorFrame("unexpected request \(frame.type.rawValue)")
        }
    }

    /// What local would ask next about the targets of an alias: where each
    /// plain address goes and, for a local user, that the user is no alias
    /// (AliasProtocol.Hint). Pipes, files, includes, quoted and escaped
    /// names are left to be asked about.
    func hints(for targets: [String]) -> [AliasProtocol.Hint] {
        var hints: [AliasProtocol.Hint] = []
        var seen: Set<String> = []
        for target in targets where seen.insert(target).inserted {
            guard let first = target.first, !"|/\\\"<:".contains(first), target == target.trimming() else { continue }
            let resolution = decisions.resolve(target).0
            var notAlias: String? = nil
            if resolution.routeClass == .local || resolution.routeClass == .unknownLocal {
                // The name local's expansion asks about (AliasExpansion).
                let user = resolution.localUser
                let name = user.asciiLowercased()
                if !user.hasPrefix("\\"), !user.hasPrefix("\""), decisions.expand(name) == nil { notAlias = name }
            }
            hints.append(AliasProtocol.Hint(target: target, resolution: resolution, notAlias: notAlias))
        }
        return hints
    }

    public static func main() -> Never {
        DaemonSkeleton.main(program: "aliasd", privilege: .mailOwner(chroot: false)) { context in
            // Read the maps while the files are still certainly reachable.
            AliasDaemon(configuration: context.configuration, logger: context.logger)
        } serve: { context, daemon in
            try daemon.serve(context)
        }
    }

    func serve(_ context: DaemonContext) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listenFD = context.listenFD()
        let server = try IPCServer.serve(listenFD: listenFD, group: group) {
            IPCRequestHandler { [self.handle($0)] }
        }
        // aliasd holds no state worth finishing: stop accepting and go.
        let close: @Sendable () -> Void = { server.close(promise: nil) }
        try MasterControl.watch(context, on: group.next(), drain: close, stop: close)
        try server.closeFuture.wait()
        try? group.syncShutdownGracefully()
    }
}
