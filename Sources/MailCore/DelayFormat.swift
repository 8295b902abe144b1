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
