/// One entry of an mbox file, in the format Postfix's and sendmail's local
/// delivery write (mboxo): the `From ` separator line, optional header lines
/// put in front of the message, the message with every line that starts with
/// `From ` quoted as `>From `, a newline at the end if the message lacks one,
/// and one empty line after it. Readers split the file at `From ` lines that
/// follow an empty line, so without the quoting a message could forge the
/// start of another, and without the empty line the next entry's separator
/// would not be found.
public enum MboxEntry {
    /// `envelopeSender` is written as is (`MAILER-DAEMON` for an empty one).
    public static func make(envelopeSender: String, date: BrokenDownTime, headers: [UInt8] = [],
                            content: [UInt8]) -> [UInt8] {
        var out = Array("From \(envelopeSender.isEmpty ? "MAILER-DAEMON" : envelopeSender)  \(date.asctime)\n".utf8)
        out += headers
        out.reserveCapacity(out.count + content.count + content.count / 1000 + 2)
        let from: [UInt8] = Array("From ".utf8)
        var lineStart = true
        var i = 0
        let n = content.count
        while i < n {
            if lineStart, content[i] == 0x46, i + 5 <= n, content[i..<(i + 5)].elementsEqual(from) {
                out.append(UInt8(ascii: ">"))
            }
            // Copy to the end of this line in one go.
            var j = i
            while j < n && content[j] != 10 { j += 1 }
            if j < n { j += 1 }
            out.append(contentsOf: content[i..<j])
            lineStart = content[j - 1] == 10
            i = j
        }
        if content.last != 10 { out.append(10) }
        out.append(10)
        return out
    }
}
