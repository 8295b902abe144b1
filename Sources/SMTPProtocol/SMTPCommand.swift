import MailCore

/// One ESMTP parameter of MAIL or RCPT: `SIZE=1000`, `BODY=8BITMIME`.
public struct ESMTPParameter: Hashable, Sendable {
    /// Upper-cased keyword.
    public var keyword: String
    public var value: String?

    public init(keyword: String, value: String?) {
        self.keyword = keyword
        self.value = value
    }
}

/// A parsed SMTP command (RFC 5321 section 4.1).
public enum SMTPCommand: Hashable, Sendable {
    case helo(String)
    case ehlo(String)
    /// nil reverse path is the null sender `<>`.
    case mail(MailAddress?, [ESMTPParameter])
    case rcpt(MailAddress, [ESMTPParameter])
    case data
    /// BDAT chunk-size [LAST] (RFC 3030): exactly chunk-size octets of
    /// message follow the command line.
    case bdat(Int, last: Bool)
    case rset
    case noop
    case quit
    case startTLS
    /// AUTH mechanism [initial-response] (RFC 4954).
    case auth(String, String?)
    case help(String?)
    case vrfy(String)
}

/// Why a command line could not be parsed; the state machine maps each to a reply.
public enum SMTPCommandError: Error, Hashable, Sendable {
    case empty
    case unrecognized
    case syntax(verb: String)
    case badSender(AddressSyntaxError)
    case badRecipient(AddressSyntaxError)
    case badParameter(String)
    /// Bytes that are not UTF-8.
    case badEncoding
    /// A BDAT whose chunk size cannot be read: the client's byte stream can
    /// no longer be followed, so the session must end.
    case badChunkSize
}

extension SMTPCommand {
    /// Parses one command line without its line ending. With
    /// `strictEnvelopes`, MAIL and RCPT take only RFC 5321's form,
    /// `FROM:<path>` with no space around the colon and the brackets
    /// required (Postfix's strict_rfc821_envelopes); otherwise spaces and a
    /// bare address are tolerated, as Postfix and sendmail tolerate them.
    public static func parse(_ line: some Collection<UInt8>, strictEnvelopes: Bool = false) throws(SMTPCommandError) -> SMTPCommand {
        guard !line.contains(0) else { throw .syntax(verb: "") }
        // Only well-formed UTF-8 may carry non-ASCII (RFC 6531).
        guard let text = String(validating: line, as: UTF8.self) else { throw .badEncoding }
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw .empty }
        let verbEnd = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? trimmed.endIndex
        let verb = trimmed[..<verbEnd].uppercased()
        let argument = trimmed[verbEnd...].trimmingSpaces()

        switch verb {
        case "HELO", "EHLO":
            let name = argument.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
            guard !name.isEmpty else { throw .syntax(verb: verb) }
            return verb == "HELO" ? .helo(name) : .ehlo(name)
        case "MAIL":
            let (path, params) = try splitPathArgument(argument, keyword: "FROM", verb: verb, strict: strictEnvelopes)
            do {
                return .mail(try MailAddress.parsePath(path, requireBrackets: strictEnvelopes, allowUTF8: true), params)
            } catch {
                throw .badSender(error)
            }
        case "RCPT":
            let (path, params) = try splitPathArgument(argument, keyword: "TO", verb: verb, strict: strictEnvelopes)
            let address: MailAddress?
            do {
                address = try MailAddress.parsePath(path, requireBrackets: strictEnvelopes, allowUTF8: true)
            } catch {
                throw .badRecipient(error)
            }
            guard let address else { throw .badRecipient(.empty) }
            return .rcpt(address, params)
        case "DATA":
            guard argument.isEmpty else { throw .syntax(verb: verb) }
            return .data
        case "BDAT":
            // chunk-size = 1*DIGIT, end-marker = "LAST" (RFC 3030 section 2).
            let words = argument.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard (1...2).contains(words.count), (1...18).contains(words[0].utf8.count),
                  words[0].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let size = Int(words[0]) else {
                throw .badChunkSize
            }
            guard words.count == 1 || words[1].uppercased() == "LAST" else { throw .badChunkSize }
            return .bdat(size, last: words.count == 2)
        case "RSET":
            guard argument.isEmpty else { throw .syntax(verb: verb) }
            return .rset
        case "NOOP":
            return .noop
        case "AUTH":
            let words = argument.split(separator: " ", omittingEmptySubsequences: true)
            guard (1...2).contains(words.count) else { throw .syntax(verb: verb) }
            return .auth(words[0].uppercased(), words.count == 2 ? String(words[1]) : nil)
        case "STARTTLS":
            guard argument.isEmpty else { throw .syntax(verb: verb) }
            return .startTLS
        case "QUIT":
            guard argument.isEmpty else { throw .syntax(verb: verb) }
            return .quit
        case "HELP":
            return .help(argument.isEmpty ? nil : String(argument))
        case "VRFY":
            guard !argument.isEmpty else { throw .syntax(verb: verb) }
            return .vrfy(String(argument))
        default:
            throw .unrecognized
        }
    }

    /// `FROM:<path> KEY=VALUE ...`. Spaces around the colon are tolerated, as
    /// Postfix and sendmail tolerate them; the path may be bracketed or bare.
    static func splitPathArgument(_ argument: Substring, keyword: String, verb: String,
                                  strict: Bool = false) throws(SMTPCommandError) -> (Substring, [ESMTPParameter]) {
        guard argument.count > keyword.count,
              argument.prefix(keyword.count).uppercased() == keyword else { throw .syntax(verb: verb) }
        var rest = argument.dropFirst(keyword.count)
        if strict {
            // A space after the colon is a syntax error; a bare address is
            // a bad address, as Postfix answers it.
            guard rest.first == ":", let next = rest.dropFirst().first, next != " ", next != "\t" else {
                throw .syntax(verb: verb)
            }
            guard next == "<" else {
                throw verb == "MAIL" ? .badSender(.missingBrackets) : .badRecipient(.missingBrackets)
            }
            rest = rest.dropFirst()
        } else {
            rest = rest.trimmingSpaces()
            guard rest.first == ":" else { throw .syntax(verb: verb) }
            rest = rest.dropFirst().trimmingSpaces()
        }
        guard !rest.isEmpty else { throw .syntax(verb: verb) }

        let pathEnd: Substring.Index
        if rest.first == "<" {
            // The closing bracket is the first '>' outside a quoted string.
            var inQuotes = false
            var escaped = false
            var found: Substring.Index? = nil
            var index = rest.startIndex
            while index < rest.endIndex {
                let ch = rest[index]
                if escaped { escaped = false }
                else if ch == "\\" && inQuotes { escaped = true }
                else if ch == "\"" { inQuotes.toggle() }
                else if ch == ">" && !inQuotes { found = index; break }
                index = rest.index(after: index)
            }
            guard let found else { throw verb == "MAIL" ? .badSender(.missingBrackets) : .badRecipient(.missingBrackets) }
            pathEnd = rest.index(after: found)
        } else {
            pathEnd = rest.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? rest.endIndex
        }
        let path = rest[..<pathEnd]
        if strict, let after = rest[pathEnd...].first, after != " " {
            throw .syntax(verb: verb)
        }
        var params: [ESMTPParameter] = []
        for word in rest[pathEnd...].split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let pieces = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = pieces[0]
            guard !key.isEmpty, key.utf8.allSatisfy({ MailAddress.isLetterDigit($0) || $0 == UInt8(ascii: "-") }),
                  MailAddress.isLetterDigit(key.utf8.first!) else { throw .badParameter(String(word)) }
            let value = pieces.count > 1 ? String(pieces[1]) : nil
            if let value, value.isEmpty || !value.utf8.allSatisfy({ $0 >= 33 && $0 <= 126 }) {
                throw .badParameter(String(word))
            }
            params.append(ESMTPParameter(keyword: key.uppercased(), value: value))
        }
        return (path, params)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> SubSequence {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start {
            let before = index(before: end)
            guard self[before] == " " || self[before] == "\t" else { break }
            end = before
        }
        return self[start..<end]
    }
}
