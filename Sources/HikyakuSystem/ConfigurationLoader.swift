#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig

/// Reads hikyaku.conf. The default path may be missing (then the built-in
/// defaults make a local-only MTA); a path given explicitly must exist.
public enum ConfigurationLoader {
    public static let defaultPath = "/etc/hikyaku/hikyaku.conf"
    /// The largest configuration file read.
    public static let sizeLimit = 4 << 20

    public static func load(path: String?) throws -> Configuration {
        let chosen = path ?? defaultPath
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readFile(chosen, limit: sizeLimit)
        } catch let error {
            if path == nil && error.isNotFound {
                return Configuration.defaults(environmentDefaults: environment)
            }
            throw ConfigError(file: chosen, line: 0, key: nil, reason: error.description)
        }
        return try Configuration(text: String(decoding: bytes, as: UTF8.self), path: chosen,
                                 environmentDefaults: environment)
    }

    /// Reads the configuration from a descriptor the caller has opened and
    /// checked (hikyaku-drop: `fstat(2)` on the descriptor, then this read
    /// from the same descriptor, so the file checked is the file read, and
    /// no one can swap it in between). `path` names it in messages.
    public static func load(descriptor: Int32, path: String) throws -> Configuration {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(descriptor, path: path, limit: sizeLimit)
        } catch let error {
            throw ConfigError(file: path, line: 0, key: nil, reason: error.description)
        }
        return try Configuration(text: String(decoding: bytes, as: UTF8.self), path: path,
                                 environmentDefaults: environment)
    }

    static var environment: [String: String] { ["myhostname": HostName.current()] }
}
