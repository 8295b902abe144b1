import MailCore

/// How a message is laid out in a mailbox. Pure: bytes in, bytes out.
public enum MailboxFormat {
    /// The delivery headers every local delivery adds on top of the message.
    public static func deliveryHeaders(sender: String, recipient: String) -> [UInt8] {
        Array("Return-Path: <\(sender)>\nDelivered-To: \(recipient)\n".utf8)
    }

    /// A message as an mbox entry (Postfix's and sendmail's format, mboxo):
    /// the `From ` separator line, the delivery headers, the content with
    /// every line that starts with `From ` quoted as `>From `, a newline at
    /// the end if the content lacks one, and one empty line after it.
    public static func mboxEntry(sender: String, recipient: String, date: BrokenDownTime, content: [UInt8]) -> [UInt8] {
        MboxEntry.make(envelopeSender: sender, date: date,
                       headers: deliveryHeaders(sender: sender, recipient: recipient), content: content)
    }

    /// A message as a Maildir file: the delivery headers, then the content.
    public static func maildirFile(sender: String, recipient: String, content: [UInt8]) -> [UInt8] {
        var out = deliveryHeaders(sender: sender, recipient: recipient)
        out += content
        if content.last != 10 { out.append(10) }
        return out
    }

    /// True when the header section already has `Delivered-To: recipient`:
    /// the message has been here before (a forwarding loop).
    public static func hasDeliveredTo(_ recipient: String, in content: [UInt8]) -> Bool {
        let wanted = recipient.asciiLowercased()
        var i = 0
        let n = content.count
        while i < n {
            var j = i
            while j < n && content[j] != 10 { j += 1 }
            let line = content[i..<j]
            if line.isEmpty { return false }
            if let name = HeaderField.name(of: line), name.asciiLowercased() == "delivered-to",
               let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                let value = String(decoding: content[(colon + 1)..<j], as: UTF8.self)
                    .trimming(" \t").asciiLowercased()
                if value == wanted { return true }
            }
            i = j + 1
        }
        return false
    }
}
