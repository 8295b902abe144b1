/// Frames the DATA section of an SMTP transaction (RFC 5321 section 4.5.2):
/// finds the `CRLF.CRLF` end, removes dot-stuffing, and turns CRLF into LF
/// (the queue stores LF lines).
///
/// Only `CRLF.CRLF` ends data. A bare LF or bare CR is never part of an end
/// sequence, so no second message can be smuggled past a receiver that ends
/// data differently (SMTP smuggling). With the `.reject` policy the first bare
/// line ending fails the transaction; with `.normalize` a bare LF ends a line
/// (but never the data: the line after it cannot be the end-of-data line) and
/// a bare CR is kept as an ordinary byte.
public struct DataFramer: Sendable {
    public enum BareLineEndingPolicy: String, Sendable, CaseIterable {
        case reject
        case normalize
    }

    public enum Event: Equatable, Sendable {
        /// All input was consumed; more is needed.
        case needMore
        /// The end-of-data line was seen; `consumed` bytes of this input belonged to the data.
        case end(consumed: Int)
        /// A bare LF or bare CR arrived under the `.reject` policy.
        case bareLineEnding(bareLF: Bool)
    }

    enum State: Sendable {
        case lineStart, inLine, afterCR, dotAtStart, dotCR
        /// A line that began after a bare LF (normalize only): it can never
        /// be the end-of-data line, so a leading dot is content.
        case bareLineStart
    }

    var state: State = .lineStart
    public let policy: BareLineEndingPolicy
    /// Unstuffed content bytes produced so far (LF line endings).
    public private(set) var contentSize: Int = 0

    public init(policy: BareLineEndingPolicy = .reject) {
        self.policy = policy
    }

    /// Consumes `input`, appending content to `output`.
    public mutating func feed(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Event {
        let cr: UInt8 = 13, lf: UInt8 = 10, dot: UInt8 = 46
        let count = input.count
        var i = 0
        let before = output.count
        defer { contentSize += output.count - before }
        while i < count {
            let c = input[i]
            switch state {
            case .lineStart, .inLine, .bareLineStart:
                if state == .lineStart && c == dot {
                    state = .dotAtStart
                    i += 1
                    continue
                }
                if state == .bareLineStart && c == dot {
                    // "<LF>.<CR><LF>" is a known smuggling sequence: the dot
                    // stays, and the line is ordinary content.
                    output.append(dot)
                    state = .inLine
                    i += 1
                    continue
                }
                // Copy the run of ordinary bytes up to the next CR or LF at once.
                var j = i
                while j < count, input[j] != cr, input[j] != lf { j += 1 }
                if j > i {
                    output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j]))
                    state = .inLine
                    i = j
                    continue
                }
                if c == cr {
                    state = .afterCR
                } else {
                    if policy == .reject { return .bareLineEnding(bareLF: true) }
                    output.append(lf)
                    state = .bareLineStart
                }
                i += 1
            case .afterCR:
                if c == lf {
                    output.append(lf)
                    state = .lineStart
                    i += 1
                } else {
                    if policy == .reject { return .bareLineEnding(bareLF: false) }
                    output.append(cr)
                    state = .inLine
                }
            case .dotAtStart:
                if c == cr {
                    state = .dotCR
                    i += 1
                } else if c == lf {
                    if policy == .reject { return .bareLineEnding(bareLF: true) }
                    // "." then a bare LF: not an end; keep the dot.
                    output.append(dot)
                    output.append(lf)
                    state = .bareLineStart
                    i += 1
                } else {
                    state = .inLine
                }
            case .dotCR:
                if c == lf {
                    state = .lineStart
                    return .end(consumed: i + 1)
                }
                if policy == .reject { return .bareLineEnding(bareLF: false) }
                // "." CR and then something else: keep the dot and the CR.
                output.append(dot)
                output.append(cr)
                state = .inLine
            }
        }
        return .needMore
    }

    public mutating func feed(_ input: [UInt8], into output: inout [UInt8]) -> Event {
        input.withUnsafeBytes { feed($0, into: &output) }
    }
}
