/// Streams message content (LF line endings) and adds the headers a message
/// lacks at the end of its header section: `Message-ID`, `Date`, and, for
/// local submissions, `From`. Everything else passes through unchanged.
///
/// The header section ends at the first empty line, or at the first line
/// that is neither a header field nor a continuation; in the second case an
/// empty line is inserted after the added headers, so the result is a valid
/// RFC 5322 message.
public struct HeaderRepair: Sendable {
    public struct Additions: Sendable {
        public var messageID: String
        public var date: String
        /// nil: do not add a missing From (mail from the network).
        public var from: String?

        public init(messageID: String, date: String, from: String?) {
            self.messageID = messageID
            self.date = date
            self.from = from
        }
    }

    let additions: Additions
    /// domaintable rewriting of address fields (none when empty).
    let rewriter: DomainRewriter
    public private(set) var rewrittenHeaders = 0
    var inHeaders = true
    var partial: [UInt8] = []
    var currentName: String? = nil
    public private(set) var sawMessageID = false
    public private(set) var sawDate = false
    public private(set) var sawFrom = false
    /// The Message-ID header's value as found (for the log), or the one added.
    public private(set) var messageID: String? = nil
    public private(set) var receivedCount = 0
    /// A header line longer than this ends the header section (its bytes are
    /// passed on as body): memory stays bounded whatever a client sends.
    public static let maximumHeaderLine = 64 * 1024

    /// Bcc header fields are dropped (sendmail -t).
    let removeBcc: Bool
    var skippingField = false

    public init(additions: Additions, rewriter: DomainRewriter = DomainRewriter(table: [:]), removeBcc: Bool = false) {
        self.additions = additions
        self.rewriter = rewriter
        self.removeBcc = removeBcc
    }

    public mutating func feed(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        guard inHeaders else {
            output.append(contentsOf: input)
            return
        }
        var start = 0
        let n = input.count
        while start < n {
            guard inHeaders else {
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[start..<n]))
                return
            }
            var end = start
            while end < n && input[end] != 10 { end += 1 }
            if end == n {
                partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[start..<n]))
                if partial.count > Self.maximumHeaderLine {
                    endHeaders(into: &output, insertBlank: true)
                    output += partial
                    partial.removeAll()
                }
                return
            }
            partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[start..<end]))
            processLine(into: &output)
            start = end + 1
        }
    }

    public mutating func feed(_ input: [UInt8], into output: inout [UInt8]) {
        input.withUnsafeBytes { feed($0, into: &output) }
    }

    /// Called at the end of the content.
    public mutating func finish(into output: inout [UInt8]) {
        if inHeaders {
            if !partial.isEmpty {
                processLine(into: &output)
            }
            if inHeaders {
                endHeaders(into: &output, insertBlank: false)
            }
        }
    }

    /// `partial` holds one complete line without its LF.
    mutating func processLine(into output: inout [UInt8]) {
        let line = partial
        partial.removeAll(keepingCapacity: true)
        if line.isEmpty {
            endHeaders(into: &output, insertBlank: false)
            output.append(10)
            return
        }
        if HeaderField.isContinuation(line), currentName != nil {
            if skippingField { return }
            if currentName == "message-id" && messageID == "" {
                messageID = String(decoding: line, as: UTF8.self).trimming()
            }
            if let name = currentName, DomainRewriter.addressFields.contains(name), let rewritten = rewriter.rewriteHeaderValue(line) {
                output += rewritten
                rewrittenHeaders += 1
            } else {
                output += line
            }
            output.append(10)
            return
        }
        guard let name = HeaderField.name(of: line) else {
            endHeaders(into: &output, insertBlank: true)
            output += line
            output.append(10)
            return
        }
        let lowered = name.asciiLowercased()
        currentName = lowered
        skippingField = removeBcc && lowered == "bcc"
        if skippingField { return }
        switch lowered {
        case "message-id":
            sawMessageID = true
            if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                messageID = String(decoding: line[(colon + 1)...], as: UTF8.self).trimming()
            }
        case "date": sawDate = true
        case "from": sawFrom = true
        case "received": receivedCount += 1
        default: break
        }
        if DomainRewriter.addressFields.contains(lowered), !rewriter.isEmpty,
           let colon = line.firstIndex(of: UInt8(ascii: ":")),
           let rewritten = rewriter.rewriteHeaderValue(Array(line[(colon + 1)...])) {
            output += line[...colon]
            output += rewritten
            rewrittenHeaders += 1
        } else {
            output += line
        }
        output.append(10)
    }

    mutating func endHeaders(into output: inout [UInt8], insertBlank: Bool) {
        guard inHeaders else { return }
        inHeaders = false
        if !sawMessageID {
            output += Array("Message-ID: \(additions.messageID)\n".utf8)
            messageID = additions.messageID
        }
        if !sawDate {
            output += Array("Date: \(additions.date)\n".utf8)
        }
        if !sawFrom, let from = additions.from {
            output += Array("From: \(from)\n".utf8)
        }
        if insertBlank {
            output.append(10)
        }
    }
}
