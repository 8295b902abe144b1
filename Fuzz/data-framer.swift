// Fuzz target data-framer: DataFramer under both policies, the input fed
// at once, a byte at a time and in pieces whose sizes come from the input;
// every way must give the same messages. Each result is also checked
// against a line-by-line reading of RFC 5321 section 4.5.2 written here
// (`expectedMessages`), which spells out what each policy is meant to do.
//
// Input layout:
//   bytes 0-3  piece sizes (1 + byte % 64, in turn)
//   the rest   the bytes after 354: messages one after another, each up to
//              its CRLF.CRLF, as a client pipelines them

import MailCore
import SMTPProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDataFramer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let sizes = input.prefix(4).map { 1 + Int($0) % 64 }
    let stream = Array(input.dropFirst(4))
    for policy in DataFramer.BareLineEndingPolicy.allCases {
        let whole = frame(stream, policy: policy, pieceSizes: [stream.count])
        let bytewise = frame(stream, policy: policy, pieceSizes: [1])
        require(whole == bytewise, "\(policy): at once \(whole), byte by byte \(bytewise)")
        if !sizes.isEmpty {
            let pieces = frame(stream, policy: policy, pieceSizes: sizes)
            require(whole == pieces, "\(policy): at once \(whole), in pieces of \(sizes) \(pieces)")
        }
        checkInvariants(whole, policy: policy)
        let expected = expectedMessages(stream, policy: policy)
        require(whole == expected, "\(policy): \(whole) but expected \(expected)")
    }
    return 0
}

struct FramedMessage: Equatable, CustomStringConvertible {
    enum Ending: Equatable {
        /// At this offset of the stream, just after CRLF.CRLF.
        case end(Int)
        case bareLineEnding(bareLF: Bool)
        case needMore
    }

    var content: [UInt8] = []
    var ending: Ending = .needMore

    var description: String { "(\(ending), \"\(escaped(content))\")" }
}

/// Messages as a server reads them: a new framer after each end of data,
/// until the input runs out or a bare line ending stops the session.
func frame(_ stream: [UInt8], policy: DataFramer.BareLineEndingPolicy, pieceSizes: [Int]) -> [FramedMessage] {
    var messages: [FramedMessage] = []
    var position = 0
    var piece = 0
    while true {
        var framer = DataFramer(policy: policy)
        var message = FramedMessage()
        var ended = false
        while !ended && position < stream.count {
            let size = min(max(1, pieceSizes[piece % pieceSizes.count]), stream.count - position)
            piece += 1
            let slice = Array(stream[position..<position + size])
            let before = message.content.count
            let event = framer.feed(slice, into: &message.content)
            require(framer.contentSize == message.content.count,
                    "contentSize \(framer.contentSize) for \(message.content.count) bytes of output")
            switch event {
            case .needMore:
                position += size
            case .end(let consumed):
                require(consumed >= 1 && consumed <= size, "end consumed \(consumed) of a \(size)-byte piece")
                position += consumed
                message.ending = .end(position)
                ended = true
            case .bareLineEnding(let bareLF):
                require(policy == .reject, "bare line ending reported under normalize")
                message.ending = .bareLineEnding(bareLF: bareLF)
                messages.append(message)
                return messages
            }
            require(message.content.count - before <= size + 2, "\(message.content.count - before) bytes out of \(size) in")
        }
        messages.append(message)
        if !ended { return messages }
        if position == stream.count { return messages }
    }
}

func checkInvariants(_ messages: [FramedMessage], policy: DataFramer.BareLineEndingPolicy) {
    for message in messages {
        let content = message.content
        switch policy {
        case .reject:
            // Every line ended in CRLF, and only LF is stored.
            require(!content.contains(13), "CR stored under reject: \(message)")
        case .normalize:
            // A bare CR is kept as content. It cannot stand before a stored
            // LF unless the client sent CR CR LF (the CR, then a line end).
            break
        }
        for index in content.indices.dropFirst() where content[index] == 10 && content[index - 1] == 13 {
            require(policy == .normalize, "CR LF stored: \(message)")
        }
    }
}

/// What the framer is meant to produce, read a line at a time.
///
/// reject: lines end in CRLF; a CR without LF or an LF without CR fails the
/// message. normalize: a line ends at LF (CRLF or bare); other CRs are
/// content; a line that follows a bare LF is taken as it is (no end of
/// data, no dot removed). In both, a line after CRLF (or at the start) that
/// is "." followed by CRLF ends the data; one that starts with "." loses
/// that dot, except that "." followed by a bare LF or by a CR and something
/// other than LF keeps it (normalize only: reject has failed already).
func expectedMessages(_ stream: [UInt8], policy: DataFramer.BareLineEndingPolicy) -> [FramedMessage] {
    let cr: UInt8 = 13, lf: UInt8 = 10, dot: UInt8 = 46
    var messages: [FramedMessage] = []
    var message = FramedMessage()
    var position = 0
    var afterBareLF = false
    var justEnded = false
    while position < stream.count {
        justEnded = false
        // The line: up to the first LF, or under reject up to a bare CR or LF.
        var end = position
        var bareError: Bool? = nil
        while end < stream.count && stream[end] != lf {
            if policy == .reject && stream[end] == cr && end + 1 < stream.count && stream[end + 1] != lf {
                bareError = false
                break
            }
            end += 1
        }
        let lineStart = position
        var line = Array(stream[lineStart..<end])
        if let bareError {
            message.content += unstuffedPrefix(line, afterBareLF: afterBareLF)
            message.ending = .bareLineEnding(bareLF: bareError)
            messages.append(message)
            return messages
        }
        guard end < stream.count else {
            // No line end yet: the message is not complete. A trailing CR
            // (and a lone leading dot) are held back by the framer.
            var written = unstuffedPrefix(line, afterBareLF: afterBareLF)
            if written.last == cr { written.removeLast() }
            message.content += written
            message.ending = .needMore
            messages.append(message)
            return messages
        }
        let crlf = line.last == cr
        if crlf { line.removeLast() }
        if policy == .reject && !crlf {
            message.content += unstuffedPrefix(line, afterBareLF: false)
            message.ending = .bareLineEnding(bareLF: true)
            messages.append(message)
            return messages
        }
        position = end + 1
        if !afterBareLF && crlf && line == [dot] {
            message.ending = .end(position)
            messages.append(message)
            message = FramedMessage()
            afterBareLF = false
            justEnded = true
            continue
        }
        if !afterBareLF && line.first == dot && !(line.count == 1 && !crlf) && !(line.count > 1 && line[1] == cr) {
            line.removeFirst()
        }
        message.content += line
        message.content.append(lf)
        afterBareLF = !crlf
    }
    if !justEnded {
        messages.append(message)
    }
    return messages
}

/// The part of a line that is content, with a leading dot removed as the
/// framer removes it once it has seen the byte after the dot.
func unstuffedPrefix(_ line: [UInt8], afterBareLF: Bool) -> [UInt8] {
    guard !afterBareLF, line.first == 46 else { return line }
    if line.count == 1 { return [] }
    if line[1] == 13 { return line.count > 2 ? line : [] }
    return Array(line.dropFirst())
}
