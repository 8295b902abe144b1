/// Why an included file could not be read.
public struct MCIncludeFailure: Error, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// Reads a sendmail.mc file the way m4 reads it, as far as sendmail.mc
/// files use m4: `dnl` (to the end of the line, the newline included), `#`
/// comments, quotes with a backtick and an apostrophe (nested quotes keep
/// their inner pair), macro calls whose comma-separated arguments span
/// lines, the file's own `define`s (expanded where they are used, `$1` to
/// `$9` too), `ifdef` and `ifelse` on what the file defines, `divert`,
/// `include` and `sinclude`. Calls of sendmail's macros (`FEATURE`,
/// `DAEMON_OPTIONS`, ...) are not expanded but handed on as
/// ``MCStatement``s, in order, for ``SendmailMCImporter`` to translate;
/// text m4 would copy into sendmail.cf is handed on as raw text.
///
/// Pure: included files come through the `includes` closure.
public enum M4Reader {
    public typealias IncludeReader = (String) -> Result<String, MCIncludeFailure>

    /// `file` names the text in statements and errors; relative include
    /// paths are taken from its directory.
    public static func read(_ text: String, file: String,
                            includes: @escaping IncludeReader = { _ in .failure(MCIncludeFailure("included files are not read")) })
        throws(MCParseError) -> [MCStatement] {
        let interpreter = Interpreter(file: file, includes: includes)
        try interpreter.run(Array(text.utf8), file: file, firstLine: 1)
        return interpreter.statements
    }

    /// m4's builtins: the reader carries out the ones that matter for a
    /// sendmail.mc and reports the others.
    static let builtins: Set<String> = [
        "define", "undefine", "pushdef", "popdef", "defn", "divert", "undivert", "divnum", "dnl", "include", "sinclude",
        "ifdef", "ifelse", "changequote", "changecom", "errprint", "eval", "len", "index", "substr", "translit",
        "format", "incr", "decr", "syscmd", "esyscmd", "sysval", "maketemp", "mkstemp", "regexp", "patsubst",
        "indir", "builtin", "shift", "m4exit", "m4wrap", "traceon", "traceoff", "dumpdef", "debugmode", "debugfile",
        "__file__", "__line__", "__program__",
    ]

    /// sendmail's cf macros that take arguments or stand alone.
    static let sendmailMacros: Set<String> = Set([
        "FEATURE", "DAEMON_OPTIONS", "CLIENT_OPTIONS", "MAILER", "MAILER_DEFINITIONS", "OSTYPE", "DOMAIN", "VERSIONID",
        "HACK", "SITECONFIG", "SITE", "MASQUERADE_AS", "MASQUERADE_DOMAIN", "MASQUERADE_DOMAIN_FILE",
        "MASQUERADE_EXCEPTION", "MASQUERADE_EXCEPTION_FILE", "EXPOSED_USER", "EXPOSED_USER_FILE", "GENERICS_DOMAIN",
        "GENERICS_DOMAIN_FILE", "VIRTUSER_DOMAIN", "VIRTUSER_DOMAIN_FILE", "LOCAL_DOMAIN", "LOCAL_USER", "RELAY_DOMAIN",
        "RELAY_DOMAIN_FILE", "TRUST_AUTH_MECH", "MODIFY_MAILER_FLAGS", "SMART_HOST", "QUEUE_GROUP", "INPUT_MAIL_FILTER",
        "MAIL_FILTER", "LDAPROUTE_DOMAIN", "LDAPROUTE_DOMAIN_FILE", "CANONIFY_DOMAIN", "CANONIFY_DOMAIN_FILE",
        "UUCPSMTP", "LOCAL_NAME", "CF_DIR", "LOCAL_HOST_NAMES",
    ]).union(rawSections)

    /// Macros after which m4 copies what follows into a section of
    /// sendmail.cf: hand-written sendmail.cf lines.
    static let rawSections: Set<String> = [
        "LOCAL_CONFIG", "LOCAL_RULESETS", "LOCAL_NET_CONFIG", "LOCAL_RULE_0", "LOCAL_RULE_1", "LOCAL_RULE_2",
        "LOCAL_RULE_3", "LOCAL_SRV_FEATURES", "LOCAL_TRY_TLS", "LOCAL_TLS_RCPT", "LOCAL_TLS_CLIENT",
        "LOCAL_TLS_SERVER", "LOCAL_UUCP", "MAILER_DEFINITIONS", "LOCAL_MAILER_DEFINITIONS",
    ]

    /// Files of sendmail's m4 machinery, which a sendmail.mc includes first:
    /// they define the macros, they configure nothing.
    static func isMachinery(_ path: String) -> Bool {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        return base == "cf.m4" || base == "autoconf.m4"
    }
}

/// The reader's state while it goes through a file and what it includes.
final class Interpreter {
    var defines: [String: String] = [:]
    var diversion = 0
    /// The raw section (`LOCAL_CONFIG`, ...) that text now goes to.
    var section: String?
    var statements: [MCStatement] = []
    let includes: M4Reader.IncludeReader
    let directory: String
    var depth = 0

    init(file: String, includes: @escaping M4Reader.IncludeReader) {
        self.includes = includes
        if let slash = file.lastIndex(of: "/") {
            directory = file[..<slash].isEmpty ? "/" : String(file[..<slash])
        } else {
            directory = "."
        }
    }

    func run(_ bytes: [UInt8], file: String, firstLine: Int) throws(MCParseError) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 20 else {
            throw MCParseError(MCSource(file: file, line: firstLine), "macros expand or include each other more than 20 deep")
        }
        var cursor = Cursor(bytes: bytes, file: file, line: firstLine)
        var raw: [UInt8] = []
        var rawLine = firstLine

        func flushRaw() {
            let text = Text.trimmed(raw)
            if !text.isEmpty && diversion >= 0 {
                statements.append(.rawText(text, MCSource(file: file, line: rawLine), section: section))
            }
            raw = []
        }
        func appendRaw(_ bytes: [UInt8], line: Int) {
            if raw.allSatisfy(Text.isSpace) { rawLine = line }
            raw += bytes
        }

        while let c = cursor.peek() {
            switch c {
            case UInt8(ascii: "\n"):
                cursor.advance()
                flushRaw()
            case UInt8(ascii: "#"):
                // m4 copies a comment as it is; on a line of its own it is a
                // sendmail.cf comment, after text (`$#error`) part of it.
                let start = cursor.position
                cursor.skipLine(keepingNewline: true)
                if !raw.allSatisfy(Text.isSpace) { raw += bytes[start..<cursor.position] }
            case UInt8(ascii: "`"):
                let line = cursor.line
                appendRaw(try cursor.readQuoted(), line: line)
            case _ where Text.isNameStart(c):
                let line = cursor.line
                let start = cursor.position
                let name = cursor.readName()
                if name == "dnl" {
                    cursor.skipLine(keepingNewline: false)
                    flushRaw()
                } else if let value = defines[name] {
                    flushRaw()
                    var arguments: [String] = []
                    if cursor.peek() == UInt8(ascii: "(") {
                        arguments = try readCall(name, &cursor, start: start, line: line).call.arguments
                    }
                    try run(Array(Text.substitute(value, name: name, arguments: arguments).utf8), file: file, firstLine: line)
                } else if cursor.peek() == UInt8(ascii: "("), section == nil || isKnown(name) {
                    flushRaw()
                    let (call, lines) = try readCall(name, &cursor, start: start, line: line)
                    try perform(call, argumentLines: lines)
                } else if isKnown(name) && !M4Reader.builtins.contains(name) {
                    flushRaw()
                    try perform(MCMacroCall(name: name, arguments: [], text: name, source: MCSource(file: file, line: line)),
                                argumentLines: [])
                } else if name == "divert" {
                    diversion = 0
                    section = nil
                } else {
                    appendRaw(Array(name.utf8), line: line)
                }
            default:
                appendRaw([c], line: cursor.line)
                cursor.advance()
            }
        }
        flushRaw()
    }

    func isKnown(_ name: String) -> Bool {
        M4Reader.builtins.contains(name) || M4Reader.sendmailMacros.contains(name)
    }

    /// A call's arguments, the cursor on its `(`; returns the call and the
    /// line each argument starts on.
    func readCall(_ name: String, _ cursor: inout Cursor, start: Int, line: Int) throws(MCParseError)
        -> (call: MCMacroCall, lines: [Int]) {
        let source = MCSource(file: cursor.file, line: line)
        var display = Array(name.utf8) + [UInt8(ascii: "(")]
        var arguments: [String] = []
        var lines: [Int] = []
        var current: [UInt8] = []
        var nesting = 0
        var opaque = false
        cursor.advance()
        cursor.skipSpace()
        lines.append(cursor.line)
        while true {
            guard let c = cursor.peek() else {
                throw MCParseError(source, "\(name)( has no closing parenthesis before the end of the file")
            }
            switch c {
            case UInt8(ascii: "`"):
                let quoted = try cursor.readQuoted()
                current += quoted
                display += [UInt8(ascii: "`")] + quoted + [UInt8(ascii: "'")]
            case UInt8(ascii: "("):
                nesting += 1
                current.append(c)
                display.append(c)
                cursor.advance()
            case UInt8(ascii: ")") where nesting > 0:
                nesting -= 1
                current.append(c)
                display.append(c)
                cursor.advance()
            case UInt8(ascii: ")"):
                cursor.advance()
                arguments.append(String(decoding: current, as: UTF8.self))
                display.append(c)
                let text = Text.folded(display)
                return (MCMacroCall(name: name, arguments: arguments, text: text, source: source, opaque: opaque), lines)
            case UInt8(ascii: ",") where nesting == 0:
                cursor.advance()
                arguments.append(String(decoding: current, as: UTF8.self))
                current = []
                display += Array(", ".utf8)
                cursor.skipSpace()
                lines.append(cursor.line)
            case UInt8(ascii: "#"):
                cursor.skipLine(keepingNewline: true)
            case _ where Text.isNameStart(c):
                let innerLine = cursor.line
                let innerStart = cursor.position
                let inner = cursor.readName()
                if inner == "dnl" {
                    cursor.skipLine(keepingNewline: false)
                    continue
                }
                display += Array(inner.utf8)
                if let value = defines[inner] {
                    var innerArguments: [String] = []
                    if cursor.peek() == UInt8(ascii: "(") {
                        let nested = try readCall(inner, &cursor, start: innerStart, line: innerLine)
                        innerArguments = nested.call.arguments
                        display += Array(nested.call.text.utf8.dropFirst(inner.utf8.count))
                    }
                    current += Array(Text.substitute(value, name: inner, arguments: innerArguments).utf8)
                } else if cursor.peek() == UInt8(ascii: "("), isKnown(inner) {
                    let nested = try readCall(inner, &cursor, start: innerStart, line: innerLine)
                    display += Array(nested.call.text.utf8.dropFirst(inner.utf8.count))
                    if inner == "defn" {
                        current += Array((defines[nested.call.argument(0)] ?? "").utf8)
                    } else {
                        // eval, len, index, ...: m4 would put their result
                        // here; the reader does not compute it.
                        opaque = true
                        current += Array(nested.call.text.utf8)
                    }
                } else {
                    current += Array(inner.utf8)
                }
            default:
                current.append(c)
                display.append(c)
                cursor.advance()
            }
        }
    }

    func perform(_ call: MCMacroCall, argumentLines lines: [Int]) throws(MCParseError) {
        let file = call.source.file
        func lineOf(_ index: Int) -> Int { index < lines.count ? lines[index] : call.source.line }
        switch call.name {
        case "define", "pushdef":
            if !call.argument(0).isEmpty { defines[call.argument(0)] = call.argument(1) }
            statements.append(.macro(call))
        case "undefine", "popdef":
            defines[call.argument(0)] = nil
            statements.append(.macro(call))
        case "divert":
            diversion = Int(Text.trimmed(Array(call.argument(0).utf8))) ?? 0
            section = nil
            statements.append(.macro(call))
        case "include", "sinclude":
            try include(call)
        case "ifdef":
            guard !call.opaque else {
                statements.append(.undecided(call, reason: "its arguments call m4 builtins that are not evaluated"))
                return
            }
            let defined = defines[call.argument(0)] != nil
            statements.append(.condition(call, outcome: defined
                ? "\(call.argument(0)) is defined in this file: the second argument was read"
                : "\(call.argument(0)) is not defined in this file: " + (call.arguments.count > 2 ? "the third argument was read" : "nothing was read")))
            let chosen = defined ? 1 : 2
            if chosen < call.arguments.count {
                try run(Array(call.arguments[chosen].utf8), file: file, firstLine: lineOf(chosen))
            }
        case "ifelse":
            guard !call.opaque else {
                statements.append(.undecided(call, reason: "it compares what m4 builtins compute, which is not evaluated"))
                return
            }
            // ifelse(a, b, then, a2, b2, then2, ..., else)
            var index = 0
            var chosen: Int? = nil
            while true {
                let remaining = call.arguments.count - index
                if remaining >= 3 {
                    if call.arguments[index] == call.arguments[index + 1] {
                        chosen = index + 2
                        break
                    }
                    index += 3
                } else {
                    if remaining == 1 && index > 0 { chosen = index }
                    break
                }
            }
            statements.append(.condition(call, outcome: chosen.map { "argument \($0 + 1) was read" } ?? "nothing was read"))
            if let chosen {
                try run(Array(call.arguments[chosen].utf8), file: file, firstLine: lineOf(chosen))
            }
        case "changequote", "changecom":
            throw MCParseError(call.source, "\(call.name) is not supported: the file's quotes or comments would no longer be m4's usual ones")
        case "errprint", "traceon", "traceoff", "dumpdef", "debugmode", "debugfile", "m4wrap", "undivert", "divnum":
            statements.append(.condition(call, outcome: "m4 housekeeping, nothing for sendmail.cf"))
        case _ where M4Reader.builtins.contains(call.name):
            statements.append(.undecided(call, reason: "the m4 builtin \(call.name) is not evaluated"))
        case _ where M4Reader.rawSections.contains(call.name):
            section = call.name
            statements.append(.macro(call))
        default:
            section = nil
            statements.append(.macro(call))
        }
    }

    func include(_ call: MCMacroCall) throws(MCParseError) {
        let path = call.argument(0).trimmingSpace
        guard !path.isEmpty else {
            statements.append(.include(call, path: path, status: .unreadable("no file name")))
            return
        }
        if M4Reader.isMachinery(path) {
            statements.append(.include(call, path: path, status: .machinery))
            return
        }
        let resolved = path.hasPrefix("/") ? path : (directory == "/" ? "/" : directory + "/") + path
        switch includes(resolved) {
        case .success(let text):
            let index = statements.count
            try run(Array(text.utf8), file: resolved, firstLine: 1)
            statements.insert(.include(call, path: resolved, status: .read(statements: statements.count - index)), at: index)
        case .failure(let failure):
            statements.append(.include(call, path: resolved,
                                       status: call.name == "sinclude" ? .silentlyMissing : .unreadable(failure.reason)))
        }
    }
}

/// A position in m4 text.
struct Cursor {
    let bytes: [UInt8]
    let file: String
    var position = 0
    var line: Int

    init(bytes: [UInt8], file: String, line: Int) {
        self.bytes = bytes
        self.file = file
        self.line = line
    }

    func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func advance() {
        if bytes[position] == UInt8(ascii: "\n") { line += 1 }
        position += 1
    }

    mutating func readName() -> String {
        let start = position
        while let c = peek(), Text.isNameStart(c) || (c >= 48 && c <= 57) { advance() }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    /// To the end of the line; `dnl` takes the newline too, a comment not.
    mutating func skipLine(keepingNewline: Bool) {
        while let c = peek(), c != UInt8(ascii: "\n") { advance() }
        if !keepingNewline, peek() != nil { advance() }
    }

    /// m4 drops white space (newlines too) before an argument.
    mutating func skipSpace() {
        while let c = peek(), Text.isSpace(c) { advance() }
    }

    /// The text between a backtick and its matching apostrophe; inner
    /// pairs are kept.
    mutating func readQuoted() throws(MCParseError) -> [UInt8] {
        let start = MCSource(file: file, line: line)
        var nesting = 0
        var content: [UInt8] = []
        while let c = peek() {
            advance()
            if c == UInt8(ascii: "`") {
                nesting += 1
                if nesting == 1 { continue }
            } else if c == UInt8(ascii: "'") {
                nesting -= 1
                if nesting == 0 { return content }
            }
            content.append(c)
        }
        throw MCParseError(start, "a quote opened with ` is not closed with ' before the end of the file")
    }
}

enum Text {
    static func isNameStart(_ c: UInt8) -> Bool {
        (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
    }

    static func isSpace(_ c: UInt8) -> Bool {
        c == 32 || c == 9 || c == 10 || c == 13
    }

    static func trimmed(_ bytes: [UInt8]) -> String {
        var slice = bytes[...]
        while let first = slice.first, isSpace(first) { slice = slice.dropFirst() }
        while let last = slice.last, isSpace(last) { slice = slice.dropLast() }
        return String(decoding: slice, as: UTF8.self)
    }

    /// White space runs, newlines among them, as one space.
    static func folded(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var space = false
        for c in bytes {
            if isSpace(c) {
                space = true
            } else {
                if space && !out.isEmpty { out.append(32) }
                space = false
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A definition's text with `$0`..`$9` and `$#` replaced.
    static func substitute(_ value: String, name: String, arguments: [String]) -> String {
        guard value.contains("$") else { return value }
        var out = ""
        var chars = value.makeIterator()
        while let c = chars.next() {
            guard c == "$" else {
                out.append(c)
                continue
            }
            guard let next = chars.next() else {
                out.append(c)
                break
            }
            if let digit = next.wholeNumberValue, next.isASCII {
                out += digit == 0 ? name : (digit <= arguments.count ? arguments[digit - 1] : "")
            } else if next == "#" {
                out += String(arguments.count)
            } else {
                out.append(c)
                out.append(next)
            }
        }
        return out
    }
}

extension StringProtocol {
    var trimmingSpace: String { Text.trimmed(Array(utf8)) }
}
