#if canImport(Glibc)
import Glibc
#endif
import MailCore
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import NIOCore
import NIOPosix

/// aliasd - the map server
///
/// Description: the one program that reads maps. It answers, over
/// `private/aliasd`, whether an address is local and known (`resolve`) and
/// what a local alias expands to (`expand`, one level). It re-reads a source
/// file when it changes (checked at most once a second), so edits take effect
/// without a restart; a bad line is logged with file and line and skipped.
///
/// Clients: smtpd (recipient checks), qmgr (routing), local (expansion).
///
/// Security: runs as `mail_owner`, not chrooted (maps live under /etc), and
/// only reads. It trusts the map files (root's) and nothing its clients send:
/// every request is a bounded frame, every address parsed.
///
/// Configuration: `alias_file`, `local_host_names_file`, `myhostname`.
///
/// See also: local(8), smtpd(8), aliases(5).
public final class AliasDaemon: @unchecked Sendable {
    // Everything below is touched only on the single event loop.
    let configuration: Configuration
    let logger: Logger
    let aliasPath: String
    let localHostNamesPath: String
    var resolver: AddressResolver
    var aliasStamp: FileStamp?
    var domainsStamp: FileStamp?
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
        self.configuration = configuration
        self.logger = logger
        aliasPath = configuration.string("alias_file")
        localHostNamesPath = configuration.string("local_host_names_file")
        resolver = AddressResolver(domains: LocalDomains(hostname: configuration.string("myhostname"), fileText: nil),
                                   aliases: AliasFile(),
                                   userExists: { PasswdEntry.lookup(name: $0) != nil })
        reloadIfChanged(force: true)
    }

    /// Re-reads a file whose inode, size or mtime changed.
    func reloadIfChanged(force: Bool = false) {
        let now = WallClock.monotonic()
        guard force || now - lastCheck >= 1 else { return }
        lastCheck = now

        let newAliasStamp = FileStamp(path: aliasPath)
        if force || newAliasStamp != aliasStamp {
            aliasStamp = newAliasStamp
            if newAliasStamp == nil {
                if !force { logger.warning("\(aliasPath): cannot open; using no aliases") }
                resolver.aliases = AliasFile()
            } else {
                do {
                    let text = String(decoding: try FileIO.readFile(aliasPath, limit: 64 << 20), as: UTF8.self)
                    let file = AliasFile(text: text)
                    for problem in file.problems { logger.warning("\(aliasPath), \(problem)") }
                    resolver.aliases = file
                    logger.info("\(aliasPath): \(file.entries.count) aliases loaded")
                } catch {
                    logger.warning("\(error); keeping the previous aliases")
                }
            }
        }
        let newDomainsStamp = FileStamp(path: localHostNamesPath)
        if force || newDomainsStamp != domainsStamp {
            domainsStamp = newDomainsStamp
            let text = try? FileIO.readFile(localHostNamesPath, limit: 16 << 20)
            resolver.domains = LocalDomains(hostname: configuration.string("myhostname"),
                                            fileText: text.map { String(decoding: $0, as: UTF8.self) })
        }
    }

    func handle(_ frame: IPCFrame) -> IPCFrame {
        reloadIfChanged()
        switch frame.type {
        case .aliasResolve:
            guard let address = frame.string(.address) else { return AliasProtocol.errorFrame("resolve without address") }
            return resolver.resolve(address).frame
        case .aliasExpand:
            guard let name = frame.string(.address) else { return AliasProtocol.errorFrame("expand without name") }
            var targets = resolver.aliases.lookup(name)
            // RFC 5321 requires a postmaster; without an alias it is root.
            if targets == nil && name.asciiLowercased() == "postmaster" && PasswdEntry.lookup(name: "postmaster") == nil {
                targets = ["root"]
            }
            return AliasProtocol.Expansion(targets: targets).frame
        default:
            return AliasProtocol.errorFrame("unexpected request \(frame.type.rawValue)")
        }
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
        guard let listenFD = context.listenFDs.first else {
            logger.critical("aliasd needs a listening socket from the master")
            exit(1)
        }
        let server = try IPCServer.serve(listenFD: listenFD, group: group) {
            AliasRequestHandler(daemon: self)
        }
        if let control = context.controlFD {
            try MasterControl.watch(fd: control, on: group) { _ in
                // aliasd holds no state worth finishing: stop accepting and go.
                server.close(promise: nil)
            }
        }
        try server.closeFuture.wait()
        try? group.syncShutdownGracefully()
    }
}

final class AliasRequestHandler: ChannelInboundHandler {
    typealias InboundIn = IPCFrame
    typealias OutboundOut = IPCFrame
    let daemon: AliasDaemon

    init(daemon: AliasDaemon) {
        self.daemon = daemon
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = daemon.handle(unwrapInboundIn(data))
        context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
