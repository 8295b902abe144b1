/// Postfix's delay numbers: `0` under ten milliseconds, two decimals under
/// a second (`0.03`), one decimal under ten seconds (`1.2`), whole seconds
/// above.
public enum DelayFormat {
    public static func format(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 0.01 { return "0" }
        if s >= 10 { return String(Int(s.rounded(.down))) }
        let scale = s < 1 ? 100.0 : 10.0
        var text = String(Double(Int(s * scale)) / scale)
        while text.hasSuffix("0") && text.contains(".") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

/// A duration for people: `5 days`, `4 hours`, `90 seconds`.
public enum DurationText {
    public static func describe(_ seconds: Int) -> String {
        func unit(_ n: Int, _ name: String) -> String { "\(n) \(name)\(n == 1 ? "" : "s")" }
        if seconds >= 86400 && seconds % 86400 == 0 { return unit(seconds / 86400, "day") }
        if seconds >= 3600 && seconds % 3600 == 0 { return unit(seconds / 3600, "hour") }
        if seconds >= 60 && seconds % 60 == 0 { return unit(seconds / 60, "minute") }
        return unit(seconds, "second")
    }
}
