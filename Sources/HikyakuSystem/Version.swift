/// The version every program reports.
public enum HikyakuVersion {
    public static let string = "0.1.0"
}
