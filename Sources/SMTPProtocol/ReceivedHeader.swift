import MailCore

/// The `Received:` trace header smtpd prepends (RFC 5321 section 4.4), in
/// Postfix's layout:
///
///     Received: from HELO (NAME [ADDRESS])
///     	(using TLSv1.3)                          (over TLS only)
///     	by MYHOSTNAME (hikyaku) with ESMTPS id QUEUEID
///     	for <RCPT>; DATE
///
/// `for` appears only with exactly one recipient, so a Bcc list does not leak.
public enum ReceivedHeader {
    public static func text(heloName: String, clientName: String, clientAddress: String, hostname: String,
                            protocolName: String, queueID: QueueID, recipients: [String], date: String,
                            tls: String? = nil) -> String {
        let helo = sanitize(heloName.isEmpty ? clientName : heloName)
        let literal = clientAddress.contains(":") ? "IPv6:\(clientAddress)" : clientAddress
        var out = "Received: from \(helo) (\(sanitize(clientName)) [\(literal)])\n"
        if let tls { out += "\t(using \(sanitize(tls)))\n" }
        out += "\tby \(hostname) (hikyaku) with \(protocolName) id \(queueID)"
        if recipients.count == 1 {
            out += "\n\tfor <\(sanitize(recipients[0]))>; \(date)\n"
        } else {
            out += ";\n\t\(date)\n"
        }
        return out
    }

    /// HELO names and addresses come from the client: keep them printable and
    /// free of anything that could end the header or nest a comment.
    static func sanitize(_ text: String) -> String {
        let bytes = text.utf8.prefix(255).map { b -> UInt8 in
            (b < 0x21 || b > 0x7e || b == UInt8(ascii: "(") || b == UInt8(ascii: ")")) ? UInt8(ascii: "_") : b
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
