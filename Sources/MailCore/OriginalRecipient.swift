/// RFC 3461 ORCPT: the recipient as the sender first addressed it, with its
/// address type (`rfc822;jun@example.jp`). It travels with the recipient
/// through relays and alias expansion and comes back in a report as
/// `Original-Recipient`. It is not the address before this host's own alias
/// expansion, which the queue keeps separately.
public struct OriginalRecipient: Hashable, Sendable, CustomStringConvertible {
    /// The address type, such as `rfc822`, as the client wrote it.
    public var addressType: String
    /// The address, xtext-decoded.
    public var address: String

    /// RFC 3461 section 4.2 lets an MTA refuse longer ORCPT values.
    public static let maximumLength = 500

    /// Builds one from parts that are already valid (see ``isValid``).
    public init?(addressType: String, address: String) {
        self.addressType = addressType
        self.address = address
        guard isValid else { return nil }
    }

    /// The value of an SMTP `ORCPT=` parameter: `addr-type ";" xtext`. nil
    /// when the type is not an atom, the address is not xtext, or the decoded
    /// address is empty, too long or not printable US-ASCII.
    public init?(parameter: some StringProtocol) {
        guard let semicolon = parameter.firstIndex(of: ";"),
              let decoded = XText.decode(parameter[parameter.index(after: semicolon)...]),
              XText.isPrintable(decoded) else { return nil }
        self.init(addressType: String(parameter[..<semicolon]), address: String(decoding: decoded, as: UTF8.self))
    }

    /// The form a queue file and the IPC frames keep: `addr-type ";" address`,
    /// decoded.
    public init?(stored: some StringProtocol) {
        guard let semicolon = stored.firstIndex(of: ";") else { return nil }
        self.init(addressType: String(stored[..<semicolon]), address: String(stored[stored.index(after: semicolon)...]))
    }

    public var stored: String { addressType + ";" + address }

    /// The form for an outgoing `RCPT TO:<...> ORCPT=` parameter.
    public var parameter: String { addressType + ";" + XText.encode(address) }

    /// `rfc822; jun@example.jp`: the value of a report's `Original-Recipient`.
    public var description: String { addressType + "; " + address }

    /// A type of 1 to 64 letters, digits and hyphens (RFC 3461 says atom;
    /// every registered type is of this shape), and an address of 1 to
    /// ``maximumLength`` printable US-ASCII characters.
    public var isValid: Bool {
        let type = addressType.utf8
        return !type.isEmpty && type.count <= 64
            && type.allSatisfy { MailAddress.isLetterDigit($0) || $0 == UInt8(ascii: "-") }
            && !address.isEmpty && address.utf8.count <= Self.maximumLength && XText.isPrintable(address.utf8)
    }
}
