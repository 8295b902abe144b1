import MailCore

/// A message dropped by the sendmail command into maildrop/ for pickup:
///
///     file     = magic envelope content
///     magic    = "HKD" %x01
///     envelope = one IPC frame of type maildropEnvelope
///     content  = the message as the caller gave it, LF line endings
///
/// The file's owner (set by the kernel: the setgid helper runs with the
/// caller's uid) is who submitted it; nothing in the envelope can claim
/// otherwise.
public struct MaildropFile: Equatable, Sendable {
    public static let magic: [UInt8] = [0x48, 0x4B, 0x44, 0x01]

    /// The sender asked for with -f/-r; nil means the submitter's own address.
    public var requestedSender: String?
    public var recipients: [String]
    /// -t: Bcc headers are removed by cleanup.
    public var removeBcc: Bool
    public var fullName: String?
    public var bodyType: String?
    /// DSN options (RFC 3461): NOTIFY for every recipient, RET, ENVID.
    public var notify: String?
    public var ret: String?
    public var envid: String?
    /// NOTIFY and ORCPT of each recipient, in step with `recipients`, or
    /// empty (sendmail -bs: what the SMTP dialogue said).
    public var recipientDSN: [RecipientDSN]
    /// sendmail options accepted without effect, for the debug log.
    public var ignoredOptions: [String]
    /// `SMTP` or `ESMTP` for a message from a `sendmail -bs` session (its
    /// MAIL FROM is the requested sender); nil for one from standard input.
    public var smtpProtocol: String?
    public var content: [UInt8]

    public init(requestedSender: String?, recipients: [String], removeBcc: Bool = false, fullName: String? = nil,
                bodyType: String? = nil, notify: String? = nil, ret: String? = nil, envid: String? = nil,
                recipientDSN: [RecipientDSN] = [], ignoredOptions: [String] = [], smtpProtocol: String? = nil,
                content: [UInt8]) {
        self.requestedSender = requestedSender
        self.recipients = recipients
        self.removeBcc = removeBcc
        self.fullName = fullName
        self.bodyType = bodyType
        self.notify = notify
        self.ret = ret
        self.envid = envid
        self.recipientDSN = recipientDSN
        self.ignoredOptions = ignoredOptions
        self.smtpProtocol = smtpProtocol
        self.content = content
    }

    public func encoded() -> [UInt8] {
        var frame = IPCFrame(.maildropEnvelope)
        if let requestedSender { frame.add(.sender, requestedSender) }
        for r in recipients { frame.add(.recipient, r) }
        frame.add(.found, removeBcc)
        if let fullName { frame.add(.text, fullName) }
        if let bodyType { frame.add(.bodyType, bodyType) }
        if let notify { frame.add(.notify, notify) }
        if let ret { frame.add(.statusWord, ret) }
        if let envid { frame.add(.messageID, envid) }
        for dsn in recipientDSN {
            frame.add(.recipientNotify, Int(dsn.notify.rawValue))
            frame.add(.orcpt, dsn.originalRecipient?.stored ?? "")
        }
        for option in ignoredOptions { frame.add(.option, option) }
        if let smtpProtocol { frame.add(.protocolName, smtpProtocol) }
        return Self.magic + frame.encoded() + content
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case badMagic
        case badEnvelope(IPCError)
        case noRecipients
    }

    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        guard bytes.count >= 4, Array(bytes[0..<4]) == Self.magic else { throw .badMagic }
        let decoded: (IPCFrame, Int)?
        do {
            decoded = try IPCFrame.decode(Array(bytes[4...]))
        } catch {
            throw .badEnvelope(error)
        }
        guard let (frame, used) = decoded, frame.type == .maildropEnvelope else { throw .badEnvelope(.truncatedAttribute) }
        requestedSender = frame.string(.sender)
        recipients = frame.strings(.recipient)
        guard !recipients.isEmpty else { throw .noRecipients }
        removeBcc = frame.bool(.found) ?? false
        fullName = frame.string(.text)
        bodyType = frame.string(.bodyType)
        notify = frame.string(.notify)
        ret = frame.string(.statusWord)
        envid = frame.string(.messageID)
        do {
            recipientDSN = try CleanupProtocol.decodeRecipientDSN(in: frame, recipients: recipients.count)
        } catch {
            throw .badEnvelope(error)
        }
        ignoredOptions = frame.strings(.option)
        smtpProtocol = frame.string(.protocolName)
        content = Array(bytes[(4 + used)...])
    }
}
