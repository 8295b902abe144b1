import HikyakuIPC
import MailCore
import SMTPProtocol

/// The RCPT decision for a resolved recipient, given who the client is.
///
/// Relay: by default only 127.0.0.1 and ::1 may send to domains that are not
/// local, as sendmail's default access file makes them; no other address
/// (not even elsewhere in 127/8) relays until the access map says so.
public struct RecipientPolicy: Sendable {
    public init() {}

    public func mayRelay(clientAddress: String) -> Bool {
        clientAddress == "127.0.0.1" || clientAddress == "::1" || clientAddress == "::ffff:127.0.0.1"
    }

    public func verdict(for recipient: MailAddress, resolution: AliasProtocol.Resolution,
                        clientAddress: String) -> SMTPServerStateMachine.RecipientVerdict {
        switch resolution.routeClass {
        case .local:
            return .accept
        case .unknownLocal:
            return .reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "<\(recipient)>... User unknown"))
        case .remote:
            if mayRelay(clientAddress: clientAddress) { return .accept }
            return .reject(SMTPReply(454, EnhancedStatusCode(4, 7, 1), "<\(recipient)>: Relay access denied"))
        }
    }

    public func lookupFailure(_ recipient: MailAddress) -> SMTPServerStateMachine.RecipientVerdict {
        .reject(SMTPReply(451, EnhancedStatusCode(4, 3, 0), "<\(recipient)>: Temporary lookup failure"))
    }
}
