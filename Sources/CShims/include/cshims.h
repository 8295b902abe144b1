#pragma once
// Small C shims for libc calls Swift's Glibc module does not import:
// _GNU_SOURCE-only functions, function-like macros and variadic calls.
#include <sys/types.h>
#include <signal.h>
#include <stdint.h>

// signalfd(2) for the master's event loop; returns the fd or -1.
int hk_signalfd(const sigset_t *mask);
// Reads one signalfd record; returns the signal number, 0 if none, -1 on error.
int hk_signalfd_read(int fd);

int hk_pidfd_open(pid_t pid);
int hk_syncfs(int fd);

// Decoding waitpid(2) status words.
int hk_wifexited(int status);
int hk_wexitstatus(int status);
int hk_wifsignaled(int status);
int hk_wtermsig(int status);
int hk_wcoredump(int status);

// prctl(PR_SET_PDEATHSIG, sig) and PR_SET_DUMPABLE.
int hk_set_parent_death_signal(int sig);
int hk_set_dumpable(int on);

// fcntl(F_SETLK/F_SETLKW) on the whole file: type is F_RDLCK, F_WRLCK or F_UNLCK.
int hk_lock_file(int fd, int type, int wait);
int hk_lock_type_write(void);
int hk_lock_type_unlock(void);

// fcntl(F_GETFD/F_SETFD) close-on-exec helpers.
int hk_set_cloexec(int fd, int on);
int hk_dup_cloexec_above(int fd, int minimum);
int hk_set_nonblocking(int fd, int on);
// flock(2) (Swift sees the struct flock of the same name); 1 = shared,
// 2 = exclusive, + 4 = do not wait.
int hk_flock(int fd, int operation);
// Whether the peer of a stream socket has closed its end (POLLRDHUP).
int hk_peer_closed(int fd);

// The number of threads in this process, from /proc/self/stat; -1 if unknown.
int hk_thread_count(void);

// posix_spawn with every signal reset to default, an empty signal mask,
// a new process group, and the given descriptor map. Returns 0 or an errno.
int hk_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
             const int *sources, const int *targets, int count);

// sd_notify-free helpers may come later; keep this header C-only.

// Marks every descriptor from `first` up close-on-exec (close_range with
// CLOSE_RANGE_CLOEXEC, or a /proc/self/fd walk on older kernels).
void hk_cloexec_from(int first);

// Closes every descriptor from `first` up (close_range, or a loop).
void hk_close_from(int first);

// memfd_create(2) with MFD_CLOEXEC; -1 on error.
int hk_memfd(const char *name);
