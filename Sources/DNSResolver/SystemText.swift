#if canImport(Glibc)
import Glibc
#endif

/// strerror(3) as a Swift string; nil when libc has no text.
func strerrorText(_ code: Int32) -> String? {
    guard let text = strerror(code) else { return nil }
    return String(cString: text)
}
