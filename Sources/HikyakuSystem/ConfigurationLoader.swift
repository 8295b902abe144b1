#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig

/// Reads hikyaku.conf. The default path may be missing (then the built-in
/// defaults make a local-only MTA); a path given explicitly must exist.
public enum ConfigurationLoader {
    public static let defaultPath = "/etc/hikyaku/hikyaku.conf"

    public static func load(path: String?) throws -> Configuration {
        let chosen = path ?? defaultPath
        let environment = ["myhostname": HostName.current()]
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readFile(chosen, limit: 4 << 20)
        } catch let error {
            if path == nil && error.isNotFound {
                return Configuration.defaults(environmentDefaults: environment)
            }
            throw ConfigError(file: chosen, line: 0, key: nil, reason: error.description)
        }
        return try Configuration(text: String(decoding: bytes, as: UTF8.self), path: chosen,
                                 environmentDefaults: environment)
    }
}
