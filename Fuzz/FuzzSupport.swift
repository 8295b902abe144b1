// Shared by every fuzz target (compiled into each one; see Fuzz/run.sh).

/// Stops the run when an invariant does not hold. fatalError, not assert:
/// the targets are built with -O, which removes assert.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("invariant violated: \(message())", file: file, line: line)
    }
}

/// Bytes made printable for a failure message.
func escaped(_ bytes: some Sequence<UInt8>) -> String {
    var out = ""
    for byte in bytes {
        switch byte {
        case 0x20...0x7e where byte != UInt8(ascii: "\\"): out.unicodeScalars.append(Unicode.Scalar(byte))
        case 0x0d: out += "\\r"
        case 0x0a: out += "\\n"
        case 0x09: out += "\\t"
        default: out += "\\x" + String(byte, radix: 16)
        }
    }
    return out
}

func escaped(_ text: some StringProtocol) -> String { escaped(text.utf8) }

/// Choices the harness makes on the program's behalf (a lookup's verdict, a
/// commit's result), read from a few bytes of the input, in turn, two bits
/// at a time.
struct Choices {
    let bits: UInt64
    let count: Int
    var next = 0

    init(_ bytes: some Collection<UInt8>) {
        var bits: UInt64 = 0
        for byte in bytes.prefix(8) { bits = bits << 8 | UInt64(byte) }
        self.bits = bits
        self.count = max(1, bytes.prefix(8).count * 4)
    }

    /// 0...3.
    mutating func pick() -> Int {
        let value = Int(truncatingIfNeeded: bits >> UInt64(2 * (next % count))) & 3
        next += 1
        return value
    }
}
