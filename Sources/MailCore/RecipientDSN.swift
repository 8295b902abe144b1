/// What RFC 3461 lets a sender ask about one recipient: NOTIFY and ORCPT.
public struct RecipientDSN: Hashable, Sendable {
    /// Empty when NOTIFY was not given.
    public var notify: DSNNotify
    public var originalRecipient: OriginalRecipient?

    public init(notify: DSNNotify = [], originalRecipient: OriginalRecipient? = nil) {
        self.notify = notify
        self.originalRecipient = originalRecipient
    }

    /// What a recipient made from this one by alias or .forward expansion
    /// carries: the ORCPT, and NOTIFY without SUCCESS.
    public var inheritedByExpansion: RecipientDSN {
        RecipientDSN(notify: notify.inheritedByExpansion, originalRecipient: originalRecipient)
    }
}
