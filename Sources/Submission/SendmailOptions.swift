/// sendmail's command line as every caller on a Debian host writes it:
/// options glued or separate, grouped (`-ti`), anywhere among the operands,
/// `--` ending them, recipients separated by commas.
public struct SendmailOptions: Equatable, Sendable {
    /// The `-bX` operation mode: m (deliver), s (SMTP on stdin), t, v, i, p, d.
    public var mode: Character = "m"
    public var configPath: String? = nil
    public var verbose = false
    /// -t: recipients from To/Cc/Bcc (the command line's are added).
    public var extractRecipients = false
    /// -i, -oi: a line with a lone dot does not end the message.
    public var ignoreDots = false
    /// -f/-r: the envelope sender (`<>` or empty for the null sender).
    public var sender: String? = nil
    /// -F: the full name for a From: header that is added.
    public var fullName: String? = nil
    /// -N, -R, -V: DSN NOTIFY, RET and ENVID (RFC 3461).
    public var notify: String? = nil
    public var ret: String? = nil
    public var envid: String? = nil
    /// -B: 7BIT or 8BITMIME.
    public var bodyType: String? = nil
    /// -q[time]: run the queue.
    public var queueRun: String? = nil
    /// -L: the syslog label.
    public var label: String? = nil
    public var recipients: [String] = []
    /// Options accepted for compatibility and otherwise without effect
    /// (`-oem`, `-odi`, `-U`, `-X FILE`, ...), as the caller wrote them; pickup
    /// logs them once at debug level with the queue ID.
    public var ignored: [String] = []

    public init() {}

    public struct UsageError: Error, Equatable, Sendable {
        public let message: String
    }

    /// sendmail 8.17's options that take an argument, glued or separate.
    static let withArgument: Set<Character> = ["A", "B", "b", "C", "d", "e", "F", "f", "h", "L", "M", "N", "O", "p", "Q", "R", "r", "V", "X"]
    /// Options whose argument is optional and can only be glued.
    static let gluedOnly: Set<Character> = ["o", "q"]

    public static func parse(_ arguments: [String], programName: String) throws(UsageError) -> SendmailOptions {
        var options = SendmailOptions()
        switch programName {
        case "newaliases": options.mode = "i"
        case "mailq": options.mode = "p"
        default: break
        }
        var operands: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                operands += arguments[index...]
                break
            }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                operands.append(argument)
                continue
            }
            var chars = Array(argument.dropFirst())
            while !chars.isEmpty {
                let flag = chars.removeFirst()
                var value: String? = nil
                if withArgument.contains(flag) {
                    if !chars.isEmpty {
                        value = String(chars)
                        chars.removeAll()
                    } else {
                        guard index < arguments.count else {
                            throw UsageError(message: "option requires an argument -- '\(flag)'")
                        }
                        value = arguments[index]
                        index += 1
                    }
                } else if gluedOnly.contains(flag) {
                    value = String(chars)
                    chars.removeAll()
                }
                try options.apply(flag, value)
            }
        }
        for operand in operands {
            for recipient in SendmailAddressList.split(operand) { options.recipients.append(recipient) }
        }
        return options
    }

    mutating func apply(_ flag: Character, _ value: String?) throws(UsageError) {
        switch flag {
        case "b":
            guard let mode = value, mode.count == 1, "mstvipdPD".contains(mode) else {
                throw UsageError(message: "Invalid operation mode \(value ?? "")")
            }
            self.mode = mode.first!
        case "C": configPath = value
        case "v":
            verbose = true
            ignored.append("-v")
        case "t": extractRecipients = true
        case "i": ignoreDots = true
        case "f", "r": sender = value
        case "F": fullName = value
        case "N": notify = value
        case "R": ret = value
        case "V": envid = value
        case "B": bodyType = value?.uppercased()
        case "L":
            label = value
            ignored.append("-L" + (value ?? ""))
        case "q": queueRun = value ?? ""
        case "o":
            // -oi is the one -o option with a meaning here; -oem, -odi,
            // -odb, -odq, -om, -o7, -o8 and the rest are sendmail tuning.
            if value == "i" { ignoreDots = true } else { ignored.append("-o" + (value ?? "")) }
        default:
            ignored.append("-\(flag)" + (value ?? ""))
        }
    }
}

/// Address lists as callers give them: comma-separated operands, and the
/// To/Cc/Bcc header fields `-t` reads.
public enum SendmailAddressList {
    /// Splits on commas outside quotes, angle brackets and comments; keeps
    /// each address's text (phrase and brackets included).
    public static func split(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        var inQuotes = false, escaped = false
        var angle = 0, comment = 0
        for ch in text {
            if escaped { current.append(ch); escaped = false; continue }
            switch ch {
            case "\\": escaped = true; current.append(ch)
            case "\"" where comment == 0: inQuotes.toggle(); current.append(ch)
            case "(" where !inQuotes: comment += 1; current.append(ch)
            case ")" where !inQuotes && comment > 0: comment -= 1; current.append(ch)
            case "<" where !inQuotes && comment == 0: angle += 1; current.append(ch)
            case ">" where !inQuotes && comment == 0 && angle > 0: angle -= 1; current.append(ch)
            case "," where !inQuotes && comment == 0 && angle == 0:
                out.append(current)
                current = ""
            default: current.append(ch)
            }
        }
        out.append(current)
        return out.map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    }

    /// The addresses in To, Cc and Bcc of a header section (folded lines
    /// joined); group syntax `name: a, b;` gives its members.
    public static func recipients(inHeaders content: [UInt8]) -> [String] {
        var fields: [(name: String, value: String)] = []
        var i = 0
        let n = content.count
        while i < n {
            var j = i
            while j < n && content[j] != 10 { j += 1 }
            let line = content[i..<j]
            if line.isEmpty { break }
            if let first = line.first, first == 32 || first == 9, !fields.isEmpty {
                fields[fields.count - 1].value += " " + String(decoding: line, as: UTF8.self)
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).trimmingSpaces().lowercased()
                fields.append((name, String(decoding: line[(colon + 1)...], as: UTF8.self)))
            }
            i = j + 1
        }
        var out: [String] = []
        for field in fields where ["to", "cc", "bcc"].contains(field.name) {
            for item in split(field.value) {
                var address = item
                // Group syntax: "undisclosed-recipients:;" or "team: a, b;".
                if let colon = address.firstIndex(of: ":"), !address.contains("<"), !address.hasPrefix("\"") {
                    address = String(address[address.index(after: colon)...])
                }
                address = address.replacingOccurrences(of: ";", with: "").trimmingSpaces()
                let spec = addrSpec(address)
                if !spec.isEmpty { out.append(spec) }
            }
        }
        return out
    }

    /// The recipients without repeats, in their first order: an address is a
    /// repeat of an earlier one when its local part is the same, compared
    /// exactly (`Jun` and `jun` may be different mailboxes), and its domain is
    /// the same without regard to case; an address without a domain counts as
    /// `@origin`, where pickup will put it. The first spelling is kept.
    /// (`sendmail -t` with a recipient both in the header and on the command
    /// line would otherwise queue it twice and deliver it twice.)
    public static func removingDuplicates(_ addresses: [String], origin: String) -> [String] {
        var seen: Set<String> = []
        return addresses.filter { address in
            let key: String
            if let at = address.lastIndex(of: "@") {
                key = String(address[..<at]) + "@" + address[address.index(after: at)...].lowercased()
            } else {
                key = address + "@" + origin.lowercased()
            }
            return seen.insert(key).inserted
        }
    }

    /// The addr-spec of `Name <user@host> (comment)`.
    static func addrSpec(_ text: String) -> String {
        var result = text
        if let open = text.lastIndex(of: "<"), let close = text.lastIndex(of: ">"), open < close {
            result = String(text[text.index(after: open)..<close])
        } else {
            // Drop comments.
            var out = ""
            var depth = 0
            for ch in text {
                if ch == "(" { depth += 1; continue }
                if ch == ")" && depth > 0 { depth -= 1; continue }
                if depth == 0 { out.append(ch) }
            }
            result = out
        }
        return result.trimmingSpaces()
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// Reading the message from standard input as sendmail does.
public enum SubmittedMessage {
    /// CRLF becomes LF; without -i a line holding a lone dot ends the input;
    /// the result ends with a newline.
    public static func normalize(_ input: [UInt8], ignoreDots: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count + 1)
        var i = 0
        let n = input.count
        while i < n {
            var j = i
            while j < n && input[j] != 10 { j += 1 }
            var line = input[i..<j]
            if line.last == 13 { line = line.dropLast() }
            if !ignoreDots && line.count == 1 && line.first == UInt8(ascii: ".") { break }
            out += line
            out.append(10)
            i = j + 1
        }
        return out
    }
}
