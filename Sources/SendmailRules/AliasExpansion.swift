/// Expands a local recipient to what is finally delivered, with sendmail's
/// semantics: aliases (case-insensitive, nested, `user+detail` falling back
/// to `user+*` and `user`), `~/.forward` for users, `:include:` files,
/// `\user` (the mailbox, no further aliasing), `/file` and `|command`
/// targets, addresses resolved through the router (virtusertable,
/// mailertable), duplicates removed, loops detected.
///
/// Pure: every lookup is a function the caller supplies (aliasd for the
/// aliases, the file system for .forward and :include:, passwd for users).
public struct AliasExpansion {
    /// Whose authority a file or command target carries: the aliases file's
    /// owner, an include file's owner, or the user whose .forward named it.
    public enum Source: Hashable, Sendable {
        case aliases
        case include(String)
        case forward(user: String)
    }

    public enum Leaf: Equatable, Sendable {
        /// The mailbox of a local user.
        case mailbox(user: String, display: String)
        /// Another address, sent on through the queue.
        case remote(address: String, display: String, route: MailerTriple)
        case file(path: String, source: Source)
        case pipe(command: String, source: Source)
        /// Undeliverable: `User unknown`, an `error:` map result, an
        /// unreadable include file.
        case error(display: String, text: String, status: String)

        /// The address as sendmail's `-bv` prints it.
        public var display: String {
            switch self {
            case .mailbox(_, let display), .remote(_, let display, _), .error(let display, _, _): return display
            case .file(let path, _): return path
            case .pipe(let command, _): return "\"\(command)\""
            }
        }

        /// sendmail's `-bv` triple for a deliverable leaf.
        public var triple: MailerTriple? {
            switch self {
            case .mailbox(let user, let display):
                return MailerTriple(mailer: "local", host: nil, user: display.hasPrefix("\\") ? "\\" + user : user)
            case .remote(_, _, let route): return route
            case .file(let path, _): return MailerTriple(mailer: "*file*", host: nil, user: path)
            case .pipe(let command, _): return MailerTriple(mailer: "prog", host: nil, user: "\"\(command)\"")
            case .error: return nil
            }
        }
    }

    public enum Failure: Error, Equatable, Sendable {
        /// sendmail: `aliasing/forwarding loop broken`.
        case loop(String)
        case lookupFailed(String)
    }

    public static let maximumDepth = 20

    /// Why an include file could not be read: sendmail's text for it.
    public struct ListFileError: Error, Equatable, Sendable {
        public var text: String
        public init(_ text: String) { self.text = text }
    }

    let aliases: (String) throws -> [String]?
    let include: (String, Source) -> Result<[String], ListFileError>
    let forward: (String) -> [String]?
    let userExists: (String) -> Bool
    let route: (String) -> MailerTriple

    public init(aliases: @escaping (String) throws -> [String]?,
                include: @escaping (String, Source) -> Result<[String], ListFileError>,
                forward: @escaping (String) -> [String]?,
                userExists: @escaping (String) -> Bool,
                route: @escaping (String) -> MailerTriple) {
        self.aliases = aliases
        self.include = include
        self.forward = forward
        self.userExists = userExists
        self.route = route
    }

    struct State {
        var leaves: [Leaf] = []
        var seen: Set<String> = []
        var loop: String? = nil
    }

    /// Expands a local name (an alias or a user) that an address resolved to;
    /// `display` is the address as the caller knows it.
    public func expand(_ name: String, display: String) throws(Failure) -> [Leaf] {
        var state = State()
        try expandName(name, display: display, chain: [], source: .aliases, state: &state)
        if state.leaves.isEmpty, let loop = state.loop { throw .loop(loop) }
        if state.leaves.isEmpty { throw .loop("no recipients left") }
        return state.leaves
    }

    func add(_ leaf: Leaf, key: String, state: inout State) {
        if state.seen.insert(key).inserted { state.leaves.append(leaf) }
    }

    func expandName(_ rawName: String, display: String, chain: [String], source: Source, state: inout State) throws(Failure) {
        if rawName.hasPrefix("\\") {
            let user = String(rawName.dropFirst()).lowercasedASCII
            mailboxOrUnknown(user, display: display, state: &state)
            return
        }
        let name = rawName.hasPrefix("\"") ? rawName : rawName.lowercasedASCII
        if chain.contains(name) {
            state.loop = (chain + [name]).joined(separator: " -> ")
            return
        }
        guard chain.count < Self.maximumDepth else {
            state.loop = chain.joined(separator: " -> ")
            return
        }
        var targets: [String]?
        var mailbox = name
        do {
            targets = try aliases(name)
            if targets == nil, let plus = name.firstIndex(of: "+"), plus != name.startIndex, !name.hasPrefix("\"") {
                let user = String(name[..<plus])
                mailbox = user
                targets = try aliases(user + "+*")
                if targets == nil { targets = try aliases(user) }
            }
        } catch {
            throw .lookupFailed("\(error)")
        }
        if let targets {
            for target in targets {
                try expandTarget(target, self: name, chain: chain + [name], source: source, state: &state)
            }
            return
        }
        // A user: their .forward, if they have one, says where mail goes.
        if userExists(mailbox), let forwarded = forward(mailbox), !forwarded.isEmpty {
            for target in forwarded {
                try expandTarget(target, self: mailbox, chain: chain + [name], source: .forward(user: mailbox), state: &state)
            }
            return
        }
        mailboxOrUnknown(mailbox, display: display, state: &state)
    }

    func mailboxOrUnknown(_ user: String, display: String, state: inout State) {
        if userExists(user) {
            add(.mailbox(user: user, display: display), key: "mailbox:" + user, state: &state)
        } else {
            add(.error(display: display, text: "User unknown", status: "5.1.1"), key: "error:" + display, state: &state)
        }
    }

    func expandTarget(_ raw: String, self owner: String, chain: [String], source: Source, state: inout State) throws(Failure) {
        var target = raw.trimming()
        if target.hasPrefix("\"") && target.hasSuffix("\"") && target.count >= 2,
           target.dropFirst().first == "|" || target.dropFirst().first == "/" {
            target = String(target.dropFirst().dropLast())
        }
        if target.hasPrefix("<") && target.hasSuffix(">") { target = String(target.dropFirst().dropLast()) }
        guard !target.isEmpty else { return }
        if target.hasPrefix("\\") {
            let user = String(target.dropFirst()).lowercasedASCII
            mailboxOrUnknown(user, display: target, state: &state)
            return
        }
        if target.hasPrefix("|") {
            add(.pipe(command: target, source: source), key: "pipe:" + target, state: &state)
            return
        }
        if target.hasPrefix("/") {
            add(.file(path: target, source: source), key: "file:" + target, state: &state)
            return
        }
        if target.lowercasedASCII.hasPrefix(":include:") {
            let path = String(target.dropFirst(9)).trimming()
            // Read with the authority of whoever named the file.
            switch include(path, source) {
            case .success(let members):
                if chain.contains(":include:" + path) {
                    state.loop = (chain + [":include:" + path]).joined(separator: " -> ")
                    return
                }
                for member in members {
                    try expandTarget(member, self: owner, chain: chain + [":include:" + path], source: .include(path), state: &state)
                }
            case .failure(let error):
                add(.error(display: ":include:" + path, text: error.text, status: "4.3.0"), key: "include:" + path, state: &state)
            }
            return
        }
        let triple = route(target)
        switch triple.mailer {
        case "local":
            let name = triple.user
            if name.lowercasedASCII == owner && !name.hasPrefix("\\") {
                // "jun: jun, other": jun's own mailbox, not the alias again.
                mailboxOrUnknown(owner, display: target, state: &state)
                return
            }
            try expandName(name, display: target, chain: chain, source: source, state: &state)
        case "*error*":
            add(.error(display: target, text: triple.errorText ?? triple.user, status: triple.errorStatus),
                key: "error:" + target, state: &state)
        default:
            add(.remote(address: triple.user, display: target, route: triple), key: "remote:" + triple.user.lowercasedASCII, state: &state)
        }
    }

    /// Splits the text of a .forward or :include: file into targets: commas
    /// and newlines separate them, `#` starts a comment line.
    public static func targets(inListFile text: String) -> [String] {
        var out: [String] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let trimmed = line.trimming()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            out += SendmailAddress.splitUnquoted(trimmed, on: ",").map { $0.trimming() }.filter { !$0.isEmpty }
        }
        return out
    }
}
