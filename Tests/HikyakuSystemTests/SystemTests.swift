#if canImport(Glibc)
import Glibc
#endif
import HikyakuIPC
import Testing
@testable import HikyakuSystem

@Suite("The systems layer")
struct SystemTests {
    func temporaryDirectory() -> String {
        var template = Array("/tmp/hikyaku-unit-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        return path
    }

    @Test("spawned programs get exactly the descriptors mapped to them")
    func spawnDescriptors() throws {
        let dir = temporaryDirectory()
        let output = dir + "/fds"
        let out = try ProcessSpawner.moveAbove(try FileIO.open(output, O_WRONLY | O_CREAT, mode: 0o600))
        let pipe = try Pipe()
        let leaked = try FileIO.open("/dev/null", O_RDONLY)  // close-on-exec: must not appear
        let pid = try ProcessSpawner.spawn(path: "/bin/sh", arguments: ["sh", "-c", "ls /proc/self/fd >&5; echo $HIKYAKU_X >&5"],
                                           environment: ["HIKYAKU_X=yes"],
                                           fdMap: [(out, 5), (pipe.readEnd, 3)])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(ProcessSpawner.Termination(status: status) == .exited(0))
        let text = String(decoding: try FileIO.readFile(output), as: UTF8.self)
        let fds = text.split(separator: "\n").dropLast().compactMap { Int($0) }.sorted()
        // 0-2 from the test runner, 3 and 5 mapped, plus ls's own directory fd.
        #expect(fds.contains(3) && fds.contains(5))
        #expect(!fds.contains(Int(leaked)) || leaked < 6)
        #expect(!fds.contains(Int(pipe.writeEnd)))
        #expect(text.hasSuffix("yes\n"))
        FileIO.close(leaked)
    }

    @Test("termination decoding")
    func termination() {
        #expect(ProcessSpawner.Termination(status: 9) == .signaled(9, coreDumped: false))
        #expect(ProcessSpawner.Termination(status: 3 << 8) == .exited(3))
        #expect(ProcessSpawner.Termination(status: 9).description == "killed by signal 9")
    }

    @Test("listen addresses", arguments: [
        ("127.0.0.1:25", "127.0.0.1", 25), ("[::1]:587", "::1", 587), (":2525", "0.0.0.0", 2525),
    ])
    func hostPort(spec: String, host: String, port: Int) throws {
        let parsed = try #require(Sockets.parseHostPort(spec))
        #expect(parsed.0 == host && parsed.1 == port)
    }

    @Test("a blocking IPC connection over a socket pair, and a peer that dies mid-frame")
    func blockingIPC() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let client = BlockingIPCConnection(fd: fds[0], timeout: 5)
        let server = BlockingIPCConnection(fd: fds[1], timeout: 5)
        var frame = IPCFrame(.aliasResolve)
        frame.add(.address, "jun@example.jp")
        try client.send(frame)
        #expect(try server.receive() == frame)
        #expect(throws: IPCError.timedOut) { try server.receive(timeout: 0.05) }
        let bytes = frame.encoded()
        try FileIO.writeAll(fds[0], Array(bytes.prefix(5)))
        shutdown(fds[0], Int32(SHUT_WR))
        #expect(throws: IPCError.peerClosed) { try server.receive() }
    }

    @Test("durable primitives: write, fsync, rename, directory listing, mtime")
    func files() throws {
        let dir = temporaryDirectory()
        let fd = try FileIO.open(dir + "/a", O_WRONLY | O_CREAT | O_EXCL)
        try FileIO.writeAll(fd, Array("hello".utf8))
        try FileIO.pwriteAll(fd, Array("J".utf8), at: 0)
        try FileIO.fsync(fd)
        FileIO.close(fd)
        try FileIO.rename(dir + "/a", dir + "/b")
        try FileIO.fsyncDirectory(dir)
        #expect(try FileIO.listDirectory(dir) == ["b"])
        #expect(try FileIO.readFile(dir + "/b") == Array("Jello".utf8))
        try FileIO.setModificationTime(dir + "/b", seconds: 1_000_000)
        #expect(FileIO.stat(dir + "/b")?.st_mtim.tv_sec == 1_000_000)
        #expect(throws: SystemError.self) { try FileIO.open(dir + "/b", O_WRONLY | O_CREAT | O_EXCL) }
        #expect(throws: SystemError.self) { try FileIO.readFile(dir + "/b", limit: 2) }
    }

    @Test("a missing default configuration gives the defaults; a missing named one is an error")
    func configuration() throws {
        #expect(throws: (any Error).self) { try ConfigurationLoader.load(path: "/nonexistent/hikyaku.conf") }
    }

    @Test("the user cache answers as getpwnam and getgrouplist do, keeps what it found, and forgets it in time")
    func userCache() throws {
        let users = UserCache(timeToLive: 60)
        let root = try #require(users.user(named: "root"))
        #expect(root == PasswdEntry.lookup(name: "root"))
        #expect(users.identity(of: root).groups == root.groupList())
        #expect(users.user(named: "hikyaku-no-such-user") == nil)

        // A remembered entry is answered without asking NSS (there is no
        // such user), until it expires.
        let ghost = PasswdEntry(name: "hikyaku-ghost", uid: 4242, gid: 4242, home: "/nonexistent", shell: "/bin/false")
        users.store("hikyaku-ghost", .init(passwd: ghost, groups: [4242, 7], expires: WallClock.monotonic() + 60))
        #expect(users.user(named: "hikyaku-ghost") == ghost)
        #expect(users.identity(of: ghost).groups == [4242, 7])
        users.store("hikyaku-ghost", .init(passwd: ghost, groups: [4242, 7], expires: WallClock.monotonic() - 1))
        #expect(users.user(named: "hikyaku-ghost") == nil)

        // Groups remembered for another passwd entry of the same name (a
        // uid changed) are not used for this one.
        users.store("root", .init(passwd: ghost, groups: [4242], expires: WallClock.monotonic() + 60))
        #expect(users.identity(of: root).groups == root.groupList())

        // Full: expired entries go first, and the cache never grows past
        // its capacity.
        let small = UserCache(timeToLive: 60, capacity: 2)
        for uid in 0..<5 {
            let name = "hikyaku-ghost\(uid)"
            small.store(name, .init(passwd: PasswdEntry(name: name, uid: uid_t(5000 + uid), gid: 5000, home: "/", shell: "/bin/false"),
                                    groups: nil, expires: WallClock.monotonic() + 60))
        }
        #expect(small.entries.withLock { $0.count } <= 2)
    }
}
