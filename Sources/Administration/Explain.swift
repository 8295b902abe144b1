#if canImport(Glibc)
import Glibc
#endif
import AliasService
import ArgumentParser
import HikyakuConfig
import HikyakuSystem
import MapStore
import SendmailRules
import Submission

/// `hikyaku explain`: the decision smtpd would make for one client, sender
/// and recipient, every step with the map, file and line that made it, and
/// where the message would then go: the local deliveries, or the mail
/// servers a live DNS lookup gives for a remote route.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain how a message from a client, sender and recipient would be decided and routed.")
    @OptionGroup var options: ConfigOption

    @Option(help: "The client's IP address.")
    var client: String = "127.0.0.1"
    @Option(name: .customLong("client-name"), help: "The client's host name (default: localhost for 127.0.0.1 and ::1, else [address]).")
    var clientName: String?
    @Option(help: "How the client's reverse lookup went: OK, FAIL, FORGED or TEMP (default: OK with a name, FAIL without).")
    var resolve: String?
    @Option(help: "The HELO/EHLO name (shown only).")
    var helo: String = ""
    @Option(name: .customLong("from"), help: "The envelope sender; <> for none.")
    var sender: String = "<>"
    @Option(name: .customLong("rcpt"), help: "The recipient.")
    var recipient: String

    func run() throws {
        let config = try options.load()
        let tables = MapLoader.routingTables(config) { print("warning: \($0)") }
        let aliasPath = config.string("alias_file")
        let aliases = AliasLoading.load(config) { print("warning: \($0)") }
        let delay = config.boolean("smtpd_delay_checks")
        let address = client.contains(":") && !client.hasPrefix("IPv6:") ? "IPv6:" + client : client
        let loopback = ["127.0.0.1", "IPv6:::1"].contains(address)
        let name = clientName ?? (loopback ? "localhost" : "[\(client)]")
        let clientInfo = ClientInfo(address: address, name: name,
                                    resolve: ClientInfo.Resolve(rawValue: (resolve ?? (name.hasPrefix("[") ? "FAIL" : "OK")).uppercased()) ?? .ok)
        func bracketed(_ text: String) -> String { text.hasPrefix("<") ? text : "<\(text)>" }

        print("client: \(clientInfo.address) (\(clientInfo.name), resolve \(clientInfo.resolve.rawValue))\(helo.isEmpty ? "" : ", helo \(helo)")")
        print("sender: \(bracketed(sender))")
        print("recipient: \(bracketed(recipient))")
        print("")
        let policy = AccessPolicy(tables: tables, delayChecks: delay)
        let outcome = policy.evaluate(client: clientInfo, sender: bracketed(sender), recipient: bracketed(recipient))
        print("access checks (\(delay ? "delay_checks: all at RCPT" : "check_relay and check_mail at MAIL")):")
        for step in outcome.steps { print("  \(step)") }
        switch outcome.decision {
        case .accept(let value):
            print("decision: accept\(value.map { " (\($0))" } ?? "")")
        case .discard:
            print("decision: discard (\(outcome.stage?.rawValue ?? ""))")
            return
        case .reject(let code, let enhanced, let text, let word):
            print("decision: \(code < 500 ? "tempfail" : "reject") at \(outcome.stage?.rawValue ?? ""): \(code) \(enhanced ?? word ?? "") \(bracketed(recipient))... \(text)")
            throw ExitCode(1)
        }
        print("")
        let router = Router(tables: tables)
        let route = router.route(bracketed(recipient))
        print("routing:")
        for step in route.steps { print("  \(step)") }
        print("  \(route.value)")
        try explainRemoteDelivery(route.value, config: config)
        guard route.value.isLocal else { return }
        print("")
        print("local delivery:")
        let decisions = RecipientDecisions(tables: tables, aliases: aliases, userExists: { PasswdEntry.lookup(name: $0) != nil })
        let expansion = AliasExpansion(
            aliases: { key in
                let targets = decisions.expand(key)
                if let targets {
                    let line = aliases.lines[key.lowercased()].map { ":\($0)" } ?? ""
                    print("  alias \(aliasPath)\(line): \(key) -> \(targets.joined(separator: ", "))")
                }
                return targets
            },
            include: { path, _ in
                guard let bytes = try? FileIO.readFile(path, limit: 4 << 20) else {
                    return .failure(.init("Cannot open \(path): No such file or directory"))
                }
                let targets = AliasExpansion.targets(inListFile: String(decoding: bytes, as: UTF8.self))
                print("  include \(path): \(targets.joined(separator: ", "))")
                return .success(targets)
            },
            forward: { user in
                guard let entry = PasswdEntry.lookup(name: user),
                      let bytes = try? FileIO.readFile(entry.home + "/.forward", limit: 1 << 20) else { return nil }
                let targets = AliasExpansion.targets(inListFile: String(decoding: bytes, as: UTF8.self))
                print("  .forward \(entry.home)/.forward: \(targets.joined(separator: ", "))")
                return targets
            },
            userExists: { PasswdEntry.lookup(name: $0) != nil },
            route: { router.route($0).value })
        do {
            for leaf in try expansion.expand(route.value.user, display: recipient) {
                if let triple = leaf.triple {
                    print("  deliverable: \(leaf.display): \(triple)")
                } else if case .error(let display, let text, _) = leaf {
                    print("  undeliverable: \(display)... \(text)")
                }
            }
        } catch {
            print("  aliasing/forwarding loop broken")
            throw ExitCode(1)
        }
    }
}
