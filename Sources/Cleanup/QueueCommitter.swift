#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Makes queue files durable, in batches (group commit).
///
/// The commit rule (DESIGN.md section 3): fsync the file, rename it into
/// incoming/, fsync incoming/. Only then is the sender told "queued". When
/// several messages finish at once, their files are fsynced one by one but
/// incoming/ is fsynced once for the whole batch; no promise is completed
/// before that directory fsync has returned.
public final class QueueCommitter: Sendable {
    public struct Job: Sendable {
        public let fd: Int32
        public let temporaryPath: String
        public let finalPath: String
        public let promise: EventLoopPromise<Void>

        public init(fd: Int32, temporaryPath: String, finalPath: String, promise: EventLoopPromise<Void>) {
            self.fd = fd
            self.temporaryPath = temporaryPath
            self.finalPath = finalPath
            self.promise = promise
        }
    }

    struct State {
        var pending: [Job] = []
        var draining = false
    }

    let pool: NIOThreadPool
    let directory: String
    let state = NIOLockedValueBox(State())

    public init(directory: String) {
        self.directory = directory
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    public func commit(_ job: Job) {
        let startDrain = state.withLockedValue { state -> Bool in
            state.pending.append(job)
            if state.draining { return false }
            state.draining = true
            return true
        }
        if startDrain {
            pool.submit { _ in self.drain() }
        }
    }

    func drain() {
        while true {
            let batch = state.withLockedValue { state -> [Job] in
                let jobs = state.pending
                state.pending.removeAll()
                if jobs.isEmpty { state.draining = false }
                return jobs
            }
            if batch.isEmpty { return }
            var renamed: [Job] = []
            for job in batch {
                do {
                    try FileIO.fsync(job.fd, path: job.temporaryPath)
                    try FileIO.rename(job.temporaryPath, job.finalPath)
                    renamed.append(job)
                } catch {
                    job.promise.fail(error)
                }
            }
            guard !renamed.isEmpty else { continue }
            do {
                try FileIO.fsyncDirectory(directory)
                for job in renamed { job.promise.succeed(()) }
            } catch {
                // The renames may not survive a crash: report failure, and
                // take the files back so nothing is delivered that the
                // client was told failed.
                for job in renamed {
                    _ = Glibc.unlink(job.finalPath)
                    job.promise.fail(error)
                }
            }
        }
    }
}
