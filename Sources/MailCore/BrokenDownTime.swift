/// A moment in local time, as `localtime_r` gives it, with the zone's offset
/// and abbreviation. Produced by the systems layer (which owns the clock);
/// formatted here without any locale or time-zone database, so formatting
/// works the same inside a chroot.
public struct BrokenDownTime: Hashable, Sendable {
    public var year: Int
    public var month: Int          // 1...12
    public var day: Int            // 1...31
    public var hour: Int
    public var minute: Int
    public var second: Int
    public var weekday: Int        // 0 = Sunday
    public var utcOffsetSeconds: Int
    public var zoneAbbreviation: String

    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int,
                weekday: Int, utcOffsetSeconds: Int, zoneAbbreviation: String) {
        self.year = year; self.month = month; self.day = day
        self.hour = hour; self.minute = minute; self.second = second
        self.weekday = weekday; self.utcOffsetSeconds = utcOffsetSeconds
        self.zoneAbbreviation = zoneAbbreviation
    }

    static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private static func pad(_ v: Int, _ width: Int = 2) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `+0900`, `-0130`.
    public var offsetText: String {
        let sign = utcOffsetSeconds < 0 ? "-" : "+"
        let minutes = abs(utcOffsetSeconds) / 60
        return sign + Self.pad(minutes / 60) + Self.pad(minutes % 60)
    }

    /// RFC 5322 date-time: `Sun, 29 Nov 2026 11:45:39 +0000 (UTC)`; the zone
    /// comment is added when the abbreviation is plain letters.
    public var rfc5322: String {
        var out = "\(Self.dayNames[weekday % 7]), \(day) \(Self.monthNames[(month - 1) % 12]) \(year) "
        out += "\(Self.pad(hour)):\(Self.pad(minute)):\(Self.pad(second)) \(offsetText)"
        if !zoneAbbreviation.isEmpty, zoneAbbreviation.utf8.allSatisfy({ MailAddress.isLetterDigit($0) }) {
            out += " (\(zoneAbbreviation))"
        }
        return out
    }

    /// asctime(3) shape for the mbox `From ` line: `Sun Nov 29 11:45:39 2026`.
    public var asctime: String {
        let dayText = day < 10 ? " \(day)" : "\(day)"
        return "\(Self.dayNames[weekday % 7]) \(Self.monthNames[(month - 1) % 12]) \(dayText) "
            + "\(Self.pad(hour)):\(Self.pad(minute)):\(Self.pad(second)) \(year)"
    }

    /// syslog's timestamp: `Nov 29 11:45:39`.
    public var syslogStamp: String {
        let dayText = day < 10 ? " \(day)" : "\(day)"
        return "\(Self.monthNames[(month - 1) % 12]) \(dayText) \(Self.pad(hour)):\(Self.pad(minute)):\(Self.pad(second))"
    }

    /// `20261129114539`, for Message-ID left-hand sides.
    public var compactStamp: String {
        Self.pad(year, 4) + Self.pad(month) + Self.pad(day) + Self.pad(hour) + Self.pad(minute) + Self.pad(second)
    }
}
