#define _GNU_SOURCE
#include "cshims.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int hk_signalfd(const sigset_t *mask) {
    return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

int hk_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
}

int hk_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
int hk_syncfs(int fd) { return syncfs(fd); }

int hk_wifexited(int status) { return WIFEXITED(status); }
int hk_wexitstatus(int status) { return WEXITSTATUS(status); }
int hk_wifsignaled(int status) { return WIFSIGNALED(status); }
int hk_wtermsig(int status) { return WTERMSIG(status); }
int hk_wcoredump(int status) { return WCOREDUMP(status); }

int hk_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }
int hk_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }

int hk_lock_file(int fd, int type, int wait) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = (short)type;
    lock.l_whence = SEEK_SET;
    lock.l_start = 0;
    lock.l_len = 0;
    return fcntl(fd, wait ? F_SETLKW : F_SETLK, &lock);
}
int hk_lock_type_write(void) { return F_WRLCK; }
int hk_lock_type_unlock(void) { return F_UNLCK; }

int hk_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, flags);
}

int hk_dup_cloexec_above(int fd, int minimum) { return fcntl(fd, F_DUPFD_CLOEXEC, minimum); }

int hk_flock(int fd, int operation) {
    int op = (operation & 2 ? LOCK_EX : LOCK_SH) | (operation & 4 ? LOCK_NB : 0);
    return flock(fd, op);
}

int hk_peer_closed(int fd) {
    struct pollfd entry = { .fd = fd, .events = POLLRDHUP, .revents = 0 };
    if (poll(&entry, 1, 0) <= 0) return 0;
    return (entry.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

int hk_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags);
}

int hk_thread_count(void) {
    // Asked before every identity switch (local: several a delivery), so the
    // file stays open and is read again from its start. The descriptor
    // names the task that opened it: a forked child opens its own.
    // Closed only in a forked child (single-threaded then), never while
    // another thread might be reading it.
    static int fd = -1;
    static pid_t owner = 0;
    pid_t me = getpid();
    if (fd < 0 || owner != me) {
        if (fd >= 0) close(fd);
        fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        owner = me;
        if (fd < 0) return -1;
    }
    char buf[1024];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = 0;
    // The command name may contain spaces and parentheses: start after the last ')'.
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    // Fields after the name: state(3) ... num_threads is field 20.
    int field = 2;
    while (*p && field < 20) {
        if (*p == ' ') field++;
        p++;
    }
    if (field != 20) return -1;
    return atoi(p);
}

int hk_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
             const int *sources, const int *targets, int count) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) { posix_spawn_file_actions_destroy(&actions); return rc; }
    for (int i = 0; i < count && rc == 0; i++) {
        // dup2 clears close-on-exec on the target; the sources stay CLOEXEC
        // in the master, so nothing else leaks into the child.
        rc = posix_spawn_file_actions_adddup2(&actions, sources[i], targets[i]);
    }
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &empty);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

#include <dirent.h>
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

void hk_cloexec_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd >= first && fd != dirfd(d)) hk_set_cloexec(fd, 1);
    }
    closedir(d);
}

void hk_close_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = first; fd < max; fd++) close(fd);
}

#include <sys/mman.h>
int hk_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
