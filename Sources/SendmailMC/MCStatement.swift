/// Where a macro of a sendmail.mc file was written.
public struct MCSource: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// One macro call as m4 would make it: the name, the arguments with one
/// level of quotes removed, `dnl` comments dropped and the file's own
/// definitions expanded.
public struct MCMacroCall: Sendable, Equatable {
    public var name: String
    public var arguments: [String]
    /// The call as written, on one line (white space runs folded, `dnl`
    /// comments left out), for the `# from FILE:LINE:` comments.
    public var text: String
    public var source: MCSource
    /// An argument held a call of an m4 builtin (`eval`, `len`, ...) that
    /// is not evaluated, so the arguments are not what m4 would see.
    public var opaque: Bool

    public init(name: String, arguments: [String], text: String, source: MCSource, opaque: Bool = false) {
        self.name = name
        self.arguments = arguments
        self.text = text
        self.source = source
        self.opaque = opaque
    }

    /// The argument at `index`, or "" (m4 gives missing arguments as empty).
    public func argument(_ index: Int) -> String {
        index < arguments.count ? arguments[index] : ""
    }
}

/// What reading a sendmail.mc file yields, in the order m4 meets it.
public enum MCStatement: Sendable, Equatable {
    /// A macro call (sendmail's `FEATURE`, `define`, `DAEMON_OPTIONS`, ...,
    /// or a name the reader does not know followed by arguments).
    case macro(MCMacroCall)
    /// Text m4 copies into sendmail.cf as it is: raw sendmail.cf lines,
    /// typically after `LOCAL_CONFIG` or `LOCAL_RULESETS` (`section`).
    case rawText(String, MCSource, section: String?)
    /// `include` or `sinclude`, with what became of the file.
    case include(MCMacroCall, path: String, status: IncludeStatus)
    /// `ifdef` or `ifelse` that the reader decided; `outcome` says which
    /// branch it read.
    case condition(MCMacroCall, outcome: String)
    /// `ifdef`, `ifelse` or another m4 builtin whose outcome depends on
    /// something the reader does not evaluate.
    case undecided(MCMacroCall, reason: String)

    public enum IncludeStatus: Sendable, Equatable {
        /// sendmail's m4 machinery (`cf.m4`, Debian's `autoconf.m4`): not read.
        case machinery
        /// Read; it held this many statements.
        case read(statements: Int)
        /// Could not be read (the reason), so what it defines is unknown.
        case unreadable(String)
        /// `sinclude` of a file that cannot be read: nothing, as in m4.
        case silentlyMissing
    }

    public var source: MCSource {
        switch self {
        case .macro(let call), .include(let call, _, _), .condition(let call, _), .undecided(let call, _): return call.source
        case .rawText(_, let source, _): return source
        }
    }
}

/// A sendmail.mc file that cannot be read as m4: the file and line.
public struct MCParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public var source: MCSource
    public var message: String

    public init(_ source: MCSource, _ message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(message)" }
}
