extension StringProtocol {
    /// The text without leading and trailing characters from `characters`
    /// (space and tab unless told otherwise).
    public func trimming(_ characters: String = " \t") -> String {
        var s = Substring(self)
        while let first = s.first, characters.contains(first) { s = s.dropFirst() }
        while let last = s.last, characters.contains(last) { s = s.dropLast() }
        return String(s)
    }
}
