#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import HikyakuSystem
import SendmailRules

/// Reads sendmail's maps and class files, as aliasd, sendmail -bt and
/// `hikyaku explain` need them. A compiled map (`NAME.db`) is used while it
/// is at least as new as its text source; when the source is newer the text
/// is used and a warning says to run makemap.
public enum MapLoader {
    /// nil when the map exists but cannot be read (the caller keeps what it
    /// had: a map must not silently become empty).
    public static func load(name: String, sourcePath: String, warn: (String) -> Void) -> MapTable? {
        let dbPath = sourcePath + ".db"
        let source = FileIO.stat(sourcePath)
        let compiled = FileIO.stat(dbPath)
        if let compiled {
            let newer = source.map { (compiled.st_mtim.tv_sec, compiled.st_mtim.tv_nsec) >= ($0.st_mtim.tv_sec, $0.st_mtim.tv_nsec) } ?? true
            if newer {
                do {
                    return try loadDatabase(name: name, path: dbPath)
                } catch {
                    warn("\(error)")
                    return nil
                }
            } else {
                warn("\(dbPath) is older than \(sourcePath); using the text file (run makemap to rebuild it)")
            }
        }
        guard source != nil else { return MapTable(name: name, path: sourcePath) }
        do {
            let bytes = try FileIO.readFile(sourcePath, limit: 256 << 20)
            let parsed = MapSource(bytes: bytes)
            for problem in parsed.problems {
                warn("\(sourcePath): line \(problem.line): \(problem.message)")
            }
            let (table, duplicates) = parsed.table(name: name, path: sourcePath)
            for line in duplicates {
                warn("\(sourcePath): line \(line.number): key \(String(decoding: line.key, as: UTF8.self)): duplicate key; the first entry is used")
            }
            return table
        } catch {
            warn("\(error)")
            return nil
        }
    }

    /// A compiled map; keys and values lose the trailing NUL that `makemap -N`
    /// (and newaliases) store.
    public static func loadDatabase(name: String, path: String) throws -> MapTable {
        let database = try BerkeleyMap.openForReading(path)
        defer { database.close() }
        var entries: [String: MapTable.Entry] = [:]
        for (key, value) in try database.entries() {
            // Lookups fold case, so keys do too (a map built with -f still matches).
            let k = String(decoding: key.last == 0 ? key.dropLast() : key[...], as: UTF8.self).lowercased()
            let v = String(decoding: value.last == 0 ? value.dropLast() : value[...], as: UTF8.self)
            if entries[k] == nil { entries[k] = MapTable.Entry(value: v, line: 0) }
        }
        return MapTable(name: name, path: path, entries: entries)
    }

    /// A class file (local-host-names, relay-domains, trusted-users): words,
    /// `#` comments. Returns each word with the file:line it came from.
    public static func loadClass(path: String) -> [String: String] {
        guard let bytes = try? FileIO.readFile(path, limit: 16 << 20) else { return [:] }
        var out: [String: String] = [:]
        var number = 0
        for raw in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) {
                var name = String(word).lowercased()
                while name.hasSuffix(".") { name.removeLast() }
                if !name.isEmpty && out[name] == nil { out[name] = "\(path):\(number)" }
            }
        }
        return out
    }

    /// The routing tables a configuration names.
    public static func routingTables(_ configuration: Configuration, previous: RoutingTables? = nil,
                                     warn: (String) -> Void) -> RoutingTables {
        let hostname = configuration.string("myhostname")
        var sources: [String: String] = [:]
        var local = RoutingTables.defaultLocalNames(hostname: hostname)
        for name in local { sources[name] = "built in" }
        for (name, origin) in loadClass(path: configuration.string("local_host_names_file")) {
            local.insert(name)
            sources[name] = origin
        }
        let relay = Set(loadClass(path: configuration.string("relay_domains_file")).keys)
        return RoutingTables(
            localDomains: local, relayDomains: relay,
            virtualDomains: Set(configuration.list("virtuser_domains").map { $0.lowercased() }),
            access: load(name: "access", sourcePath: configuration.string("access_map"), warn: warn)
                ?? previous?.access ?? .empty("access"),
            virtusertable: load(name: "virtusertable", sourcePath: configuration.string("virtusertable_map"), warn: warn)
                ?? previous?.virtusertable ?? .empty("virtusertable"),
            mailertable: load(name: "mailertable", sourcePath: configuration.string("mailertable_map"), warn: warn)
                ?? previous?.mailertable ?? .empty("mailertable"),
            domaintable: load(name: "domaintable", sourcePath: configuration.string("domaintable_map"), warn: warn)
                ?? previous?.domaintable ?? .empty("domaintable"),
            classSources: sources, smartHost: configuration.string("smart_host"))
    }

    /// The files the tables were read from (for change detection).
    public static func sourceFiles(_ configuration: Configuration) -> [String] {
        var files = [configuration.string("local_host_names_file"), configuration.string("relay_domains_file"),
                     configuration.string("trusted_users_file"), configuration.string("alias_file"),
                     configuration.string("alias_file") + ".db"]
        for key in ["access_map", "virtusertable_map", "mailertable_map", "domaintable_map"] {
            files.append(configuration.string(key))
            files.append(configuration.string(key) + ".db")
        }
        return files
    }
}
