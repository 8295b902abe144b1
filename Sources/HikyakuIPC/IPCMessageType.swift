/// Every message exchanged between hikyaku's programs. The high byte names the
/// service; a number is never reused for another meaning.
public enum IPCMessageType: UInt16, Sendable {
    // cleanup (private/cleanup)
    case cleanupBegin = 0x0101
    case cleanupContent = 0x0102
    case cleanupCommit = 0x0103
    case cleanupAbort = 0x0104
    case cleanupReply = 0x0105

    // qmgr (private/qmgr)
    case qmgrQueued = 0x0201
    /// sendmail -q, hikyaku queue flush: try every deferred message now.
    case qmgrFlush = 0x0202

    // local (private/local)
    case localDeliver = 0x0301
    case localResult = 0x0302

    // aliasd (private/aliasd)
    case aliasResolve = 0x0401
    case aliasResolveReply = 0x0402
    case aliasExpand = 0x0403
    case aliasExpandReply = 0x0404
    case aliasCheckRecipient = 0x0405
    case aliasCheckRecipientReply = 0x0406
    case aliasCheckSender = 0x0407
    case aliasDomainTable = 0x0408
    case aliasDomainTableReply = 0x0409
    /// pickup: who is uid N, and may they set another sender?
    case aliasUser = 0x040A
    case aliasUserReply = 0x040B
    /// smtpd at connect: may this client talk to us at all (TCP wrappers)?
    /// The question is a recipient check's frame; the answer its verdict.
    case aliasCheckClient = 0x040C

    // pickup (public/pickup): a wake-up, and the maildrop file's envelope
    case pickupWake = 0x0501
    case maildropEnvelope = 0x0502

    // showq (public/showq): the queue listing for mailq
    case showqList = 0x0601
    case showqEntry = 0x0602
    case showqEnd = 0x0603

    // smtp-client (private/smtp)
    case smtpDeliver = 0x0701
    case smtpResult = 0x0702

    // any service
    case error = 0xFF01
}

/// Attribute keys. Like message types, never reused.
public enum IPCKey: UInt16, Sendable {
    case queueID = 1
    case sender = 2
    case recipient = 3
    case originalRecipient = 4
    case status = 5
    case enhancedStatus = 6
    case replyCode = 7
    case text = 8
    case content = 9
    case size = 10
    case clientName = 11
    case clientAddress = 12
    case heloName = 13
    case protocolName = 14
    case origin = 15
    case bodyType = 16
    case arrivalSeconds = 17
    case arrivalMicroseconds = 18
    case recipientIndex = 19
    case contentOffset = 20
    case contentLength = 21
    case address = 22
    case routeClass = 23
    case localUser = 24
    case nexthop = 25
    case target = 26
    case found = 27
    case relay = 28
    case messageID = 29
    case notify = 30
    /// Microseconds since the epoch when qmgr took the message into active/.
    case activatedAt = 31
    /// Microseconds since the epoch when qmgr handed the delivery to the agent.
    case dispatchedAt = 32
    case clientResolve = 34
    case verdict = 35
    case mailer = 36
    case statusWord = 37
    /// A command-line option, as the caller wrote it.
    case option = 38
    /// RFC 3461 NOTIFY of one recipient (``DSNNotify``'s raw value, 0 when
    /// not given), repeated in step with `recipient`.
    case recipientNotify = 39
    /// RFC 3461 ORCPT of one recipient, decoded (`rfc822;jun@example.jp`),
    /// empty when not given; repeated in step with `recipient`.
    case orcpt = 40
    /// RFC 3464 action of one delivered recipient (`delivered`, `expanded`,
    /// `relayed`), repeated in step with `recipientIndex`.
    case dsnAction = 41
    /// aliasd: what it knows of one target of an expansion, an encoded
    /// aliasResolveReply frame with the target (``AliasProtocol/Hint``).
    case hint = 42
    /// In a hint: a name aliasd finds no alias for.
    case notAlias = 43
    // Remote delivery (smtp-client).
    /// The name of the server that answered (`mx.example.org`; DSN's
    /// Remote-MTA is `dns;` and this).
    case remoteMTA = 60
    /// The server's reply as DSN's Diagnostic-Code wants it: `550 5.1.1 text`.
    case diagnostic = 61
    /// No host of the destination could take mail (for qmgr's concurrency).
    case destinationFailed = 62
    /// The message needs SMTPUTF8 (RFC 6531).
    case smtpUTF8 = 64
    /// The peer took the message with DSN support (RFC 3461 "relayed" otherwise).
    case peerDSN = 65
    /// smtpd: the user the client authenticated as (SMTP AUTH), or absent.
    case authenticatedUser = 66
}
