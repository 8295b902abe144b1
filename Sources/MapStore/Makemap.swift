#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import SendmailRules

/// makemap(8): builds a sendmail map from text on standard input, or dumps
/// one, with sendmail 8.17's options, messages and exit codes.
///
///     makemap [-N] [-c cachesize] [-C file] [-d] [-D commentchar] [-e] [-f]
///             [-l] [-o] [-r] [-s] [-t delimiter] [-u] [-v] type mapname
///
/// The map is written to a temporary file beside the target and renamed
/// over it once it is complete and on disk, so a reader never sees half a map.
public struct Makemap {
    public static let usage = "Usage: makemap [-N] [-c cachesize] [-C cffile] [-d] [-D commentchar] [-e] [-f] [-l] [-o] [-r] [-s] [-t delimiter] [-u] [-v] type mapname"

    // sysexits(3)
    static let exUsage: Int32 = 64, exDataErr: Int32 = 65, exCantCreate: Int32 = 73, exIOErr: Int32 = 74
    static let exNoInput: Int32 = 66, exOK: Int32 = 0

    var includeNull = false
    var allowDuplicates = false
    var allowEmpty = false
    var foldCase = true
    var list = false
    var append = false
    var replace = false
    var dump = false
    var verbose = false
    var delimiter: UInt8? = nil
    var comment: UInt8 = UInt8(ascii: "#")
    var operands: [String] = []


    /// Runs makemap; returns the exit status. `write` takes (stdout, stderr) text.
    public static func run(arguments: [String], input: () -> [UInt8], write: (String, Bool) -> Void) -> Int32 {
        var options = Makemap()
        var index = 0
        func fail(_ message: String) -> Int32 {
            write("makemap: \(message)\n", true)
            write(usage + "\n", true)
            return exUsage
        }
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("-"), argument.count > 1 else { break }
            if argument == "--" { index += 1; break }
            var chars = Array(argument.dropFirst())
            while !chars.isEmpty {
                let flag = chars.removeFirst()
                func value() -> String? {
                    if !chars.isEmpty { defer { chars.removeAll() }; return String(chars) }
                    index += 1
                    return index < arguments.count ? arguments[index] : nil
                }
                switch flag {
                case "N": options.includeNull = true
                case "d": options.allowDuplicates = true
                case "e": options.allowEmpty = true
                case "f": options.foldCase = false
                case "l": options.list = true
                case "o": options.append = true
                case "r": options.replace = true
                case "s": break
                case "u": options.dump = true
                case "v": options.verbose = true
                case "c", "C":
                    guard value() != nil else { return fail("option requires an argument -- '\(flag)'") }
                case "t":
                    guard let v = value(), let c = v.utf8.first else { return fail("option requires an argument -- 't'") }
                    options.delimiter = c
                case "D":
                    guard let v = value(), let c = v.utf8.first else { return fail("option requires an argument -- 'D'") }
                    options.comment = c
                default:
                    return fail("invalid option -- '\(flag)'")
                }
            }
            index += 1
        }
        options.operands = Array(arguments[index...])
        if options.list {
            for kind in BerkeleyMap.Kind.allCases { write(kind.rawValue + "\n", false) }
            return exOK
        }
        guard options.operands.count == 2 else {
            write(usage + "\n", true)
            return exUsage
        }
        guard let kind = BerkeleyMap.Kind(rawValue: options.operands[0]) else {
            write("makemap: Unknown database type \(options.operands[0])\n", true)
            return exUsage
        }
        let mapName = options.operands[1]
        let path = mapName.hasSuffix(".db") ? mapName : mapName + ".db"
        if options.dump { return options.dump(path: path, write: write) }
        return options.build(kind: kind, mapName: mapName, path: path, input: input(), write: write)
    }

    func dump(path: String, write: (String, Bool) -> Void) -> Int32 {
        let database: BerkeleyMap
        do {
            database = try BerkeleyMap.openForReading(path)
        } catch {
            write("makemap: error opening \(path): \((error as? BerkeleyMap.Failure)?.reason ?? "\(error)")\n", true)
            return Self.exNoInput
        }
        defer { database.close() }
        do {
            var out = ""
            for (key, value) in try database.entries() {
                let k = includeNull && key.last == 0 ? Array(key.dropLast()) : key
                let v = includeNull && value.last == 0 ? Array(value.dropLast()) : value
                out += String(decoding: k, as: UTF8.self)
                out += String(UnicodeScalar(delimiter ?? 9))
                out += String(decoding: v, as: UTF8.self) + "\n"
            }
            write(out, false)
        } catch {
            write("makemap: \(path): \(error)\n", true)
            return Self.exIOErr
        }
        return Self.exOK
    }

    func build(kind: BerkeleyMap.Kind, mapName: String, path: String, input: [UInt8], write: (String, Bool) -> Void) -> Int32 {
        var sourceOptions = MapSource.Options(foldCase: foldCase, delimiter: delimiter, allowEmptyValues: allowEmpty)
        sourceOptions.commentCharacter = comment
        let source = MapSource(bytes: input, options: sourceOptions)
        var status = Self.exOK
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let temporary = "\(path).tmp\(getpid())"
        let database: BerkeleyMap
        do {
            database = try BerkeleyMap.create(temporary, kind: kind, allowDuplicates: allowDuplicates)
        } catch {
            let reason = (error as? BerkeleyMap.Failure)?.reason ?? "\(error)"
            write("makemap: error opening type \(kind.rawValue) map \(mapName): \(reason)\n", true)
            return Self.exCantCreate
        }
        var committed = false
        defer {
            database.close()
            if !committed { _ = unlink(temporary) }
        }
        if append, let existing = try? BerkeleyMap.openForReading(path) {
            for (key, value) in (try? existing.entries()) ?? [] {
                _ = try? database.put(key: key, value: value, overwrite: true)
            }
            existing.close()
        }
        // Problems and entries in line order, as makemap reports them.
        var problemIndex = 0
        func reportProblems(upTo line: Int) {
            while problemIndex < source.problems.count && source.problems[problemIndex].line <= line {
                write("makemap: \(mapName): line \(source.problems[problemIndex].line): \(source.problems[problemIndex].message)\n", true)
                status = Self.exDataErr
                problemIndex += 1
            }
        }
        for line in source.lines {
            reportProblems(upTo: line.number)
            let key = includeNull ? line.key + [0] : line.key
            let value = includeNull ? line.value + [0] : line.value
            if verbose {
                write("key=`\(String(decoding: line.key, as: UTF8.self))', val=`\(String(decoding: line.value, as: UTF8.self))'\n", false)
            }
            do {
                let result = try database.put(key: key, value: value, overwrite: replace || allowDuplicates)
                if result == .duplicate {
                    write("makemap: \(mapName): line \(line.number): key \(String(decoding: line.key, as: UTF8.self)): duplicate key\n", true)
                    status = Self.exDataErr
                }
            } catch {
                write("makemap: \(mapName): line \(line.number): key \(String(decoding: line.key, as: UTF8.self)): put error: \((error as? BerkeleyMap.Failure)?.reason ?? "\(error)")\n", true)
                status = Self.exIOErr
            }
        }
        reportProblems(upTo: Int.max)
        do {
            try database.sync()
            database.close()
            let fd = try FileIO.open(temporary, O_RDONLY)
            defer { FileIO.close(fd) }
            try FileIO.fsync(fd, path: temporary)
            if let old = FileIO.stat(path) {
                // Keep the owner and mode the admin gave the map.
                _ = chown(temporary, old.st_uid, old.st_gid)
                _ = chmod(temporary, old.st_mode & 0o7777)
            }
            try FileIO.rename(temporary, path)
            committed = true
            try FileIO.fsyncDirectory(directory)
        } catch {
            write("makemap: \(mapName): \(error)\n", true)
            return Self.exIOErr
        }
        return status
    }
}
