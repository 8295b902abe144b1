#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import MailCore
import QueueFormat

/// One message being written: a file in tmp/, named by its queue ID once the
/// inode is known.
final class CleanupTransaction {
    let queueID: QueueID
    let fd: Int32
    let temporaryPath: String
    let finalPath: String
    var writer = QueueFileWriter()
    var repair: HeaderRepair
    var pending: [UInt8] = []
    var scratch: [UInt8] = []
    var writeError: SystemError? = nil
    let sizeLimit: Int
    var contentBytes = 0
    var closed = false
    let begin: CleanupProtocol.Begin

    static let flushThreshold = 64 * 1024

    init(begin: CleanupProtocol.Begin, spool: SpoolLayout, temporaryName: String, hostname: String,
         sizeLimit: Int, rewriter: DomainRewriter) throws(SystemError) {
        self.begin = begin
        self.sizeLimit = sizeLimit
        temporaryPath = spool.file(.tmp, temporaryName)
        fd = try FileIO.open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        let st: stat
        do {
            st = try FileIO.fstat(fd, path: temporaryPath)
        } catch {
            FileIO.close(fd)
            _ = Glibc.unlink(temporaryPath)
            throw error
        }
        let (seconds, microseconds) = WallClock.now()
        queueID = QueueID(seconds: seconds, microseconds: microseconds, inode: UInt64(st.st_ino))
        finalPath = spool.file(.incoming, queueID.rawValue)

        let local = WallClock.localTime(seconds)
        repair = HeaderRepair(additions: HeaderRepair.Additions(
            messageID: "<\(local.compactStamp).\(queueID)@\(hostname)>",
            date: local.rfc5322,
            from: begin.origin == .local ? Self.fromField(sender: begin.sender, fullName: begin.fullName) : nil),
            rewriter: rewriter, removeBcc: begin.removeBcc)

        // domaintable rewrites the sender as well as the header fields.
        var envelope = QueueEnvelope(arrivalSeconds: seconds, arrivalMicroseconds: microseconds,
                                     sender: rewriter.rewriteAddress(begin.sender),
                                     recipients: Self.recipients(of: begin))
        envelope[info: .origin] = begin.origin.rawValue
        if !begin.clientName.isEmpty { envelope[info: .clientName] = begin.clientName }
        if !begin.clientAddress.isEmpty { envelope[info: .clientAddress] = begin.clientAddress }
        if !begin.heloName.isEmpty { envelope[info: .heloName] = begin.heloName }
        if !begin.protocolName.isEmpty { envelope[info: .protocolName] = begin.protocolName }
        if !begin.bodyType.isEmpty { envelope[info: .bodyType] = begin.bodyType }
        if begin.smtpUTF8 { envelope[info: .smtpUTF8] = "yes" }
        if let ret = DSNReturn(parameter: begin.ret) { envelope[info: .dsnRet] = ret.rawValue }
        if let envid = DSNEnvelopeID.validated(begin.envid) { envelope[info: .dsnEnvid] = envid }
        if !begin.submitter.isEmpty { envelope[info: .submitter] = begin.submitter }
        pending = writer.envelope(envelope)
    }

    /// The queue file's recipients with their RFC 3461 NOTIFY and ORCPT: a
    /// recipient's own NOTIFY (SMTP), else the message-wide one (sendmail -N);
    /// a message-wide value that is not a NOTIFY list counts as not given.
    ///
    /// A recipient given twice (the same address, compared without ASCII
    /// case, with the same DSN requests) is kept once, as Postfix's cleanup
    /// does: one delivery, however the client repeated itself.
    static func recipients(of begin: CleanupProtocol.Begin) -> [QueueRecipient] {
        let common = DSNNotify(option: begin.notify) ?? []
        var seen = Set<String>()
        var out: [QueueRecipient] = []
        for index in begin.recipients.indices {
            let own = index < begin.recipientDSN.count ? begin.recipientDSN[index] : RecipientDSN()
            let notify = own.notify.isEmpty ? common : own.notify
            let recipient = QueueRecipient(address: begin.recipients[index], notify: notify.rawValue,
                                           orcpt: own.originalRecipient?.stored ?? "")
            // Case is folded in the local part too, as Postfix's duplicate
            // filter does: no local part differs by case alone on one host.
            let key = recipient.address.asciiLowercased()
            guard seen.insert("\(key)\u{0}\(recipient.notify)\u{0}\(recipient.orcpt)").inserted else { continue }
            out.append(recipient)
        }
        return out
    }

    /// `From: Full Name <user@host>` for -F, quoted when the name needs it.
    static func fromField(sender: String, fullName: String) -> String {
        let address = sender.isEmpty ? "MAILER-DAEMON" : sender
        let name = fullName.filter { $0 != "\r" && $0 != "\n" }
        guard !name.isEmpty else { return address }
        let plain = name.allSatisfy { $0.isLetter || $0.isNumber || $0 == " " || "!#$%&'*+-/=?^_`{|}~".contains($0) }
        let phrase = plain ? name : "\"" + name.replacingOccurrences("\\", "\\\\").replacingOccurrences("\"", "\\\"") + "\""
        return "\(phrase) <\(address)>"
    }

    func append(_ bytes: [UInt8]) {
        guard writeError == nil else { return }
        contentBytes += bytes.count
        scratch.removeAll(keepingCapacity: true)
        repair.feed(bytes, into: &scratch)
        writer.content(scratch)
        pending += scratch
        if pending.count >= Self.flushThreshold { flush() }
    }

    func flush() {
        guard writeError == nil, !pending.isEmpty else { return }
        do {
            try FileIO.writeAll(fd, pending, path: temporaryPath)
        } catch {
            writeError = error
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Finishes the file (end record) and flushes it; the caller then hands
    /// it to the committer. Returns the refusal to give instead, if any.
    func finish() -> SMTPReply? {
        scratch.removeAll(keepingCapacity: true)
        repair.finish(into: &scratch)
        writer.content(scratch)
        pending += scratch
        pending += writer.end()
        flush()
        if let writeError {
            if writeError.isNoSpace {
                return SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Insufficient system storage")
            }
            return SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error")
        }
        if contentBytes > sizeLimit {
            return SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Error: message file too big")
        }
        if repair.receivedCount > 100 {
            return SMTPReply(554, EnhancedStatusCode(5, 4, 6), "Error: too many hops")
        }
        return nil
    }

    /// Removes the temporary file (abort, or a failed commit).
    func discard() {
        closeFile()
        _ = Glibc.unlink(temporaryPath)
    }

    func closeFile() {
        guard !closed else { return }
        closed = true
        FileIO.close(fd)
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
