/// RFC 3461 RET: what of the message a failure report carries.
public enum DSNReturn: String, Hashable, Sendable {
    /// The whole message (the default when RET is not given).
    case full = "FULL"
    /// Only its header section.
    case headers = "HDRS"

    /// `FULL` or `HDRS`, in any case; nil for anything else.
    public init?(parameter: some StringProtocol) {
        self.init(rawValue: parameter.uppercased())
    }
}
