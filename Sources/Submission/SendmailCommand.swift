#if canImport(Glibc)
import Glibc
#endif
import AliasService
import MailCore
import HikyakuConfig
import HikyakuSystem
import MapStore
import SendmailRules

/// sendmail(8) - sendmail's command line
///
/// Description: one program, behaving by the name it is called with:
/// `sendmail`, `newaliases` (= `sendmail -bi`), `mailq` (= `sendmail -bp`).
/// Modes: deliver (`-bm`, the default: the message on standard input goes
/// into the queue through the setgid hikyaku-drop helper and pickup), SMTP on
/// standard input and output (`-bs`), the queue listing (`-bp`, mailq),
/// starting the master (`-bd`), running the queue (`-q`), address test mode
/// (`-bt`), address verification (`-bv`) and the aliases database (`-bi`).
///
/// `-C FILE` names a hikyaku configuration; a sendmail `.cf` file given there
/// (as old instructions say, `-C /etc/mail/sendmail.cf`) is ignored and
/// hikyaku's own configuration is used.
///
/// Security: runs with the caller's privileges; it reads the maps and the
/// aliases itself and writes only the aliases database (`-bi`).
public enum SendmailCommand {
    // sysexits(3)
    static let exOK: Int32 = 0, exUsage: Int32 = 64, exDataErr: Int32 = 65, exNoUser: Int32 = 67
    static let exUnavailable: Int32 = 69, exSoftware: Int32 = 70, exOSErr: Int32 = 71, exCantCreate: Int32 = 73, exIOErr: Int32 = 74
    static let exTempFail: Int32 = 75, exConfig: Int32 = 78

    /// Runs the command; returns the exit status.
    public static func main(arguments: [String], programName: String, io: CommandIO) -> Int32 {
        let options: SendmailOptions
        do {
            options = try SendmailOptions.parse(arguments, programName: programName)
        } catch {
            io.error("\(programName): \(error.message)")
            return exUsage
        }
        var path = options.configPath ?? (getenv("HIKYAKU_CONFIG").map { String(cString: $0) })
        if let chosen = path, chosen.hasSuffix(".cf") {
            // A sendmail.cf from old instructions: hikyaku uses its own file.
            path = getenv("HIKYAKU_CONFIG").map { String(cString: $0) }
            _ = chosen
        }
        let configuration: Configuration
        do {
            configuration = try ConfigurationLoader.load(path: path)
        } catch {
            io.error("sendmail: \(error)")
            return exConfig
        }
        if options.queueRun != nil && options.mode == "m" {
            return QueueRun.flush(configuration: configuration, io: io)
        }
        switch options.mode {
        case "m":
            return Submit.run(options, configuration: configuration, configPath: path, io: io)
        case "s":
            return SMTPOnStandardInput.run(options, configuration: configuration, configPath: path, io: io)
        case "p":
            return QueueRun.list(configuration: configuration, io: io)
        case "d", "D":
            return QueueRun.startMaster(configuration: configuration, configPath: path, io: io)
        case "t":
            return AddressTestMode.run(configuration: configuration, io: io)
        case "v":
            return AddressVerifier.run(options.recipients, configuration: configuration, io: io)
        case "i":
            return NewAliases.run(configuration: configuration, io: io)
        default:
            io.error("sendmail: mode -b\(options.mode) is not supported")
            return exUsage
        }
    }
}

/// Standard input and output for the command modes.
public struct CommandIO {
    public let readLine: () -> String?
    /// All of standard input (the message); nil if it could not be read.
    public var readAll: () -> [UInt8]? = { nil }
    /// Raw bytes to standard output (SMTP replies).
    public var write: ([UInt8]) -> Void = { _ in }
    public let output: (String) -> Void
    public let error: (String) -> Void
    public let isInteractive: Bool

    public init(readLine: @escaping () -> String?, output: @escaping (String) -> Void,
                error: @escaping (String) -> Void, isInteractive: Bool) {
        self.readLine = readLine
        self.output = output
        self.error = error
        self.isInteractive = isInteractive
    }
}

enum AddressTestMode {
    static func run(configuration: Configuration, io: CommandIO) -> Int32 {
        let tables = MapLoader.routingTables(configuration) { io.error("warning: \($0)") }
        var session = AddressTestSession(tables: tables, delayChecks: configuration.boolean("smtpd_delay_checks"))
        for line in AddressTestSession.banner { io.output(line) }
        while true {
            io.output("> ")
            guard let line = io.readLine() else { break }
            guard let lines = session.execute(line) else { break }
            for out in lines { io.output(out) }
        }
        io.output("")
        return SendmailCommand.exOK
    }
}

enum AddressVerifier {
    static func run(_ addresses: [String], configuration: Configuration, io: CommandIO) -> Int32 {
        guard !addresses.isEmpty else {
            io.error("Recipient names must be specified")
            return SendmailCommand.exUsage
        }
        let tables = MapLoader.routingTables(configuration) { io.error("warning: \($0)") }
        let aliases = AliasLoading.load(configuration) { io.error("warning: \($0)") }
        let decisions = RecipientDecisions(tables: tables, aliases: aliases, userExists: { PasswdEntry.lookup(name: $0) != nil })
        let router = decisions.router
        let expansion = AliasExpansion(
            aliases: { decisions.expand($0) },
            include: { path, _ in
                guard let bytes = try? FileIO.readFile(path, limit: 4 << 20) else {
                    return .failure(.init("Cannot open \(path): No such file or directory"))
                }
                return .success(AliasExpansion.targets(inListFile: String(decoding: bytes, as: UTF8.self)))
            },
            forward: { user in
                guard let entry = PasswdEntry.lookup(name: user),
                      let bytes = try? FileIO.readFile(entry.home + "/.forward", limit: 1 << 20) else { return nil }
                return AliasExpansion.targets(inListFile: String(decoding: bytes, as: UTF8.self))
            },
            userExists: { PasswdEntry.lookup(name: $0) != nil },
            route: { router.route($0).value })
        var status = SendmailCommand.exOK
        for address in addresses {
            let triple = router.route(address).value
            switch triple.mailer {
            case "local":
                do {
                    for leaf in try expansion.expand(triple.user, display: address) {
                        if let deliverable = leaf.triple {
                            io.output("\(leaf.display)... deliverable: \(deliverable)")
                        } else if case .error(let display, let text, let code) = leaf {
                            io.output("\(display)... \(text)")
                            status = max(status, code == "5.1.1" ? SendmailCommand.exNoUser : SendmailCommand.exUsage)
                        }
                    }
                } catch {
                    io.output("aliasing/forwarding loop broken")
                    status = max(status, SendmailCommand.exUsage)
                }
            case "*error*":
                io.output("\(address)... \(triple.errorText ?? triple.user)")
                status = max(status, SendmailCommand.exNoUser)
            default:
                io.output("\(address)... deliverable: \(triple)")
            }
        }
        return status
    }
}

/// Loading the aliases the way aliasd does (aliases.db while it is newer).
public enum AliasLoading {
    public static func load(_ configuration: Configuration, warn: (String) -> Void) -> AliasFile {
        let path = configuration.string("alias_file")
        let table = MapLoader.load(name: "aliases", sourcePath: path) { _ in } ?? MapTable(name: "aliases", path: path)
        if table.path.hasSuffix(".db") {
            let file = AliasFile(databaseEntries: table.entries.map { ($0.key, $0.value.value) })
            for problem in file.problems { warn("\(table.path): \(problem)") }
            return file
        }
        guard let bytes = try? FileIO.readFile(path, limit: 64 << 20) else { return AliasFile() }
        let file = AliasFile(text: String(decoding: bytes, as: UTF8.self))
        for problem in file.problems { warn("\(path): \(problem)") }
        return file
    }
}

/// newaliases (`sendmail -bi`): builds aliases.db from the aliases file.
enum NewAliases {
    static func run(configuration: Configuration, io: CommandIO) -> Int32 {
        let path = configuration.string("alias_file")
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readFile(path, limit: 64 << 20)
        } catch {
            io.error("newaliases: cannot open \(path): \(String(cString: strerror(error.errno)))")
            return 66
        }
        let file = AliasFile(text: String(decoding: bytes, as: UTF8.self))
        for problem in file.problems where problem.isWarning { io.error("\(path): \(problem)") }
        let errors = file.errors
        if !errors.isEmpty {
            for problem in errors { io.error("\(path): \(problem)") }
            io.error("newaliases: \(path) not rebuilt: \(errors.count) error\(errors.count == 1 ? "" : "s")")
            return SendmailCommand.exDataErr
        }
        // The right-hand side as written, as sendmail's newaliases stores it:
        // read back, it splits into exactly the targets the text gives, and a
        // database either program wrote reads the same.
        let entries = file.entries.keys.sorted().map { (name: $0, value: file.values[$0]!) }
        let result = AliasDatabase.write(entries, to: path + ".db")
        switch result {
        case .success(let summary):
            io.output("\(path): \(summary.count) aliases, longest \(summary.longest) bytes, \(summary.total) bytes total")
            return SendmailCommand.exOK
        case .failure(let error):
            io.error("newaliases: cannot write \(path).db: \(error)")
            return SendmailCommand.exCantCreate
        }
    }
}
