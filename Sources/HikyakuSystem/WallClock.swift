#if canImport(Glibc)
import Glibc
#endif
import MailCore

/// The wall clock and local time. `tzset()` must run before a chroot (the
/// skeleton does it) so that local time keeps working inside one.
public enum WallClock {
    public static func now() -> (seconds: Int, microseconds: Int) {
        var tv = timeval()
        gettimeofday(&tv, nil)
        return (tv.tv_sec, Int(tv.tv_usec))
    }

    public static func seconds() -> Int { now().seconds }

    /// Monotonic seconds, for timeouts and durations.
    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public static func localTime(_ seconds: Int) -> BrokenDownTime {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        let zone = tm.tm_zone.map { String(cString: $0) } ?? ""
        return BrokenDownTime(year: Int(tm.tm_year) + 1900, month: Int(tm.tm_mon) + 1, day: Int(tm.tm_mday),
                              hour: Int(tm.tm_hour), minute: Int(tm.tm_min), second: Int(tm.tm_sec),
                              weekday: Int(tm.tm_wday), utcOffsetSeconds: tm.tm_gmtoff, zoneAbbreviation: zone)
    }

    public static func prepareTimeZone() { tzset() }
}

public enum HostName {
    /// The system host name, as gethostname(2) gives it; never DNS.
    public static func current() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}
