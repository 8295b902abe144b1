/// Turns the octets of BDAT chunks (RFC 3030) into queue content: CRLF
/// becomes LF (the queue stores LF lines), a bare LF stays a line end, a
/// bare CR stays an ordinary byte. There is no dot-stuffing and no end
/// marker inside the data: the chunk sizes frame the message, so nothing in
/// the content can end it early (no smuggling through line endings).
///
/// A CR at the end of one chunk and an LF at the start of the next are one
/// line ending: the decoder carries the CR across calls.
public struct ChunkDecoder: Sendable {
    var pendingCR = false
    /// Content bytes produced so far (LF line endings).
    public private(set) var contentSize: Int = 0

    public init() {}

    /// Decodes `input`, appending content to `output`.
    public mutating func feed(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        let cr: UInt8 = 13, lf: UInt8 = 10
        let before = output.count
        defer { contentSize += output.count - before }
        var i = 0
        let count = input.count
        if pendingCR, count > 0 {
            pendingCR = false
            if input[0] == lf {
                output.append(lf)
                i = 1
            } else {
                output.append(cr)
            }
        }
        while i < count {
            // Copy the run up to the next CR at once.
            var j = i
            while j < count, input[j] != cr { j += 1 }
            if j > i { output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j])) }
            guard j < count else { break }
            if j + 1 == count {
                pendingCR = true
                break
            }
            if input[j + 1] == lf {
                output.append(lf)
                i = j + 2
            } else {
                output.append(cr)
                i = j + 1
            }
        }
    }

    public mutating func feed(_ input: [UInt8], into output: inout [UInt8]) {
        input.withUnsafeBytes { feed($0, into: &output) }
    }

    /// The message is complete: a CR still held is content.
    public mutating func finish(into output: inout [UInt8]) {
        if pendingCR {
            pendingCR = false
            output.append(13)
            contentSize += 1
        }
    }
}
