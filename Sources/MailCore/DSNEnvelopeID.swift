/// RFC 3461 ENVID: the sender's own name for a transaction, returned in every
/// report as `Original-Envelope-Id`.
public enum DSNEnvelopeID {
    /// RFC 3461 section 4.4: at most 100 characters.
    public static let maximumLength = 100

    /// The decoded value of an SMTP `ENVID=` parameter, or nil when the
    /// parameter is not xtext or its value is empty, longer than
    /// ``maximumLength`` or not printable US-ASCII.
    public static func parse(parameter: some StringProtocol) -> String? {
        guard let bytes = XText.decode(parameter) else { return nil }
        return validated(bytes)
    }

    /// A value given in the clear (`sendmail -V`, a queue file, an IPC
    /// frame), checked by the same rules.
    public static func validated(_ text: some StringProtocol) -> String? {
        validated(Array(text.utf8))
    }

    static func validated(_ bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, bytes.count <= maximumLength, XText.isPrintable(bytes) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
