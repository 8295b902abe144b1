"""Helpers shared by Benchmarks/mta_bench.py, deferred_bench.py and idle_bench.py.

- the shared harness (../shared/bench/run-smtp-bench) loaded as a module, for
  its process sampler (peak RSS/PSS summed over the MTA's processes), its
  Maildir helpers and its idle-machine check;
- the CPU time of a process tree (tree_cpu);
- an inotify watcher that timestamps files as they appear (DirWatcher);
- percentiles and the median with its spread.
"""
import ctypes
import ctypes.util
import os
import select
import struct
import time
from importlib.machinery import SourceFileLoader

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def harness(bench_dir):
    """../shared/bench/run-smtp-bench as a module (it is not modified)."""
    return SourceFileLoader("run_smtp_bench", os.path.join(bench_dir, "run-smtp-bench")).load_module()


# ---------------------------------------------------------------- processes

def proc_table():
    """pid -> (ppid, comm, [utime, stime, cutime, cstime] in ticks)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                st = f.read()
        except OSError:
            continue
        rp = st.rindex(")")
        comm = st[st.index("(") + 1:rp]
        fields = st[rp + 2:].split()
        # fields[0] is field 3 (state): utime..cstime are fields 14..17
        table[int(entry)] = (int(fields[1]), comm, [int(x) for x in fields[11:15]])
    return table


def descendants(root, table=None):
    table = table if table is not None else proc_table()
    kids = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], ([root] if root in table else [])
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu(root):
    """CPU seconds used by the process tree under root so far: for every
    live process of the tree utime + stime + cutime + cstime (cutime/cstime
    hold the children it has reaped, and theirs). Take the difference of two
    readings; a process that exits between them moves from 'live' into its
    parent's cutime/cstime, so nothing is lost or counted twice (except for
    a process reaped in the instant between reading it and its parent)."""
    if root is None:
        return None
    table = proc_table()
    pids = descendants(root, table)
    if not pids:
        return None
    return sum(sum(table[p][2]) for p in pids) / CLK_TCK


def find_in_tree(root, comm):
    table = proc_table()
    return [p for p in descendants(root, table) if table[p][1] == comm]


def read_pid(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def status_kib(pid):
    """VmRSS and VmHWM of one process, in KiB (None when it is gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
    except OSError:
        return None
    return out


# ---------------------------------------------------------------- inotify

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
_EVENT = struct.Struct("iIII")


class DirWatcher:
    """Timestamps (time.monotonic()) the first appearance of every file in a
    set of directories, with inotify: a Maildir's new/ (a file created or
    renamed into it) or a dump directory (a file closed after writing). No
    polling, so the MTA is not slowed by it; the time is when this process
    read the event, normally well under a millisecond after it happened."""

    def __init__(self, dirs, mask):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = {}
        for d in dirs:
            wd = libc.inotify_add_watch(self.fd, d.encode(), mask)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch %s" % d)
            self.wd[wd] = d
        self.seen = {}      # path -> monotonic time first seen
        self.poll = select.poll()
        self.poll.register(self.fd, select.POLLIN)

    def pump(self, timeout_s):
        """Read the events that arrive within timeout_s; returns how many
        new files were seen."""
        new = 0
        if not self.poll.poll(max(0, int(timeout_s * 1000))):
            return 0
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            now = time.monotonic()
            i = 0
            while i < len(buf):
                wd, mask, cookie, length = _EVENT.unpack_from(buf, i)
                name = buf[i + 16:i + 16 + length].split(b"\0", 1)[0].decode(errors="replace")
                i += 16 + length
                if not name or name.startswith("."):
                    continue
                path = os.path.join(self.wd.get(wd, "?"), name)
                if path not in self.seen:
                    self.seen[path] = now
                    new += 1
        return new

    def close(self):
        os.close(self.fd)


# ---------------------------------------------------------------- statistics

def f1(x, fmt="%.1f"):
    """A figure for a progress line; "-" when there is none."""
    return "-" if x is None else fmt % x


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]
