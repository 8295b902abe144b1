#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import HikyakuSystem

/// The master's side of systemd: the service notification protocol
/// (sd_notify(3): READY, RELOADING, STOPPING, WATCHDOG, STATUS) and socket
/// activation (sd_listen_fds(3)). Outside systemd (no NOTIFY_SOCKET, no
/// LISTEN_FDS) all of it is inert, and the master binds its own sockets.
struct Systemd {
    /// NOTIFY_SOCKET is set: systemd (or a test) listens for our state.
    let notifying: Bool
    /// How often to send WATCHDOG=1: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.
    let watchdogInterval: Double?

    init() {
        notifying = getenv("NOTIFY_SOCKET") != nil
        var usec: UInt64 = 0
        watchdogInterval = sd_watchdog_enabled(0, &usec) > 0 && usec > 0 ? Double(usec) / 2_000_000 : nil
    }

    func notify(_ state: String) {
        guard notifying else { return }
        _ = sd_notify(0, state)
    }

    func ready(status: String) {
        notify("READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())")
    }

    /// RELOADING=1 with the monotonic time, as systemd 253's notify-reload wants it.
    func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notify("RELOADING=1\nMONOTONIC_USEC=\(usec)\nSTATUS=reloading the configuration")
    }

    /// The master runs as a systemd service (INVOCATION_ID or JOURNAL_STREAM
    /// set) on a host whose journal listens: log there, with fields.
    static var journalAvailable: Bool {
        (getenv("INVOCATION_ID") != nil || getenv("JOURNAL_STREAM") != nil)
            && access("/run/systemd/journal/socket", W_OK) == 0
    }

    /// One journal entry through sd_journal_sendv(3).
    static func sendToJournal(_ fields: [String]) -> Bool {
        var buffers = fields.map { Array($0.utf8) }
        return buffers.withUnsafeMutableBufferPointer { all -> Bool in
            var vectors: [iovec] = []
            vectors.reserveCapacity(all.count)
            for index in all.indices {
                all[index].withUnsafeMutableBytes { raw in
                    vectors.append(iovec(iov_base: raw.baseAddress, iov_len: raw.count))
                }
            }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) == 0
        }
    }

    func stopping() {
        notify("STOPPING=1\nSTATUS=stopping")
    }

    func watchdog() {
        notify("WATCHDOG=1")
    }

    func status(_ text: String) {
        notify("STATUS=\(text)")
    }

    /// A listening socket passed by socket activation, and what it is for:
    /// its name (FileDescriptorName= in the socket unit) `submission` or
    /// `smtps`, or port 25's SMTP for any other name.
    struct InheritedListener: Equatable {
        let fd: Int32
        let role: String
        let address: String
    }

    /// The sockets systemd passed (LISTEN_FDS, LISTEN_FDNAMES), taken once;
    /// the variables are unset so no program the master starts sees them.
    /// Anything but a listening TCP socket is closed and reported.
    static func takeListeners(report: (String) -> Void) -> [InheritedListener] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let count = sd_listen_fds_with_names(1, &names)
        guard count > 0 else { return [] }
        defer {
            if let names {
                for index in 0..<Int(count) { free(names[index]) }
                free(names)
            }
        }
        var taken: [InheritedListener] = []
        for index in 0..<count {
            let fd = SD_LISTEN_FDS_START + index
            let name = names?[Int(index)].map { String(cString: $0) } ?? "unknown"
            guard sd_is_socket(fd, AF_UNSPEC, Int32(SOCK_STREAM.rawValue), 1) > 0,
                  let address = Sockets.boundAddress(fd) else {
                report("socket activation: descriptor \(fd) (\(name)) is not a listening TCP socket; closed")
                close(fd)
                continue
            }
            let role = ["submission", "smtps"].contains(name) ? name : "smtp"
            taken.append(InheritedListener(fd: fd, role: role, address: address))
        }
        return taken
    }
}
