/// A queue ID in the shape of Postfix's long IDs: the arrival time in seconds
/// and microseconds, then `z`, then the queue file's inode number, all in a
/// 49-letter alphabet (digits and consonants). IDs sort by arrival time, and the inode
/// makes them unique among the files that exist at one time.
public struct QueueID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// Digits then consonants in ASCII order, so string order is numeric order
    /// for the fixed-width parts. `z` is kept out: it separates the inode.
    static let alphabet: [UInt8] = Array("0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjkmnpqrstvwxy".utf8)
    static let base = alphabet.count
    static let secondsWidth = 6
    static let microsecondsWidth = 4

    public init?(_ rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    public init(seconds: Int, microseconds: Int, inode: UInt64) {
        var out = Self.encode(UInt64(max(0, seconds)), width: Self.secondsWidth)
        out += Self.encode(UInt64(max(0, min(999_999, microseconds))), width: Self.microsecondsWidth)
        out += "z"
        out += Self.encode(inode, width: 1)
        rawValue = out
    }

    public var description: String { rawValue }
    public static func < (lhs: QueueID, rhs: QueueID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The arrival second encoded in the ID.
    public var seconds: Int {
        Int(Self.decode(rawValue.utf8.prefix(Self.secondsWidth)) ?? 0)
    }

    static func encode(_ value: UInt64, width: Int) -> String {
        var digits: [UInt8] = []
        var v = value
        repeat {
            digits.append(alphabet[Int(v % UInt64(base))])
            v /= UInt64(base)
        } while v > 0
        while digits.count < width { digits.append(alphabet[0]) }
        return String(decoding: digits.reversed(), as: UTF8.self)
    }

    static func decode(_ text: some Sequence<UInt8>) -> UInt64? {
        var v: UInt64 = 0
        for c in text {
            guard let d = alphabet.firstIndex(of: c) else { return nil }
            v = v * UInt64(base) + UInt64(d)
        }
        return v
    }

    /// Only alphabet letters and one `z` after the fixed-width time part: a
    /// queue ID is used as a file name, so nothing else may pass.
    public static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        let timeWidth = secondsWidth + microsecondsWidth
        guard bytes.count > timeWidth + 1, bytes.count <= timeWidth + 1 + 12,
              bytes[timeWidth] == UInt8(ascii: "z") else { return false }
        return bytes.enumerated().allSatisfy { index, c in index == timeWidth || alphabet.contains(c) }
    }
}
