#!/usr/bin/env python3
"""deferred_bench.py: the deferred-queue workload of `make bench`, one run
against an MTA that is already running and relays every message for
relay.test to a port where nothing listens (connection refused at once).

    deferred_bench.py --mta hikyaku --rep 1 --target 127.0.0.1:2525 \
        --pidfile PID --deferred-dir DIR --log MAILLOG \
        --flush 'sendmail -q' --mailq 'sendmail -bp' --delete 'CMD' \
        --json OUT [-n 100000] [-c 20] [-m 50]

1. fill: N messages of 1 KiB to bench@relay.test over C SMTP sessions (M
   messages each), with Benchmarks/bench_load.py; then wait until all N
   files are in the deferred queue directory (counted, subdirectories too).
   fill_accept_rate = N / time to the last 250; fill_s = time until all are
   deferred; fill_cpu_per_1k_s = CPU of the MTA's processes per 1,000.
2. qmgr's memory with the full queue: VmRSS and VmHWM of the process named
   qmgr below the master (qmgr_rss_kib, qmgr_hwm_kib), and the summed RSS
   of all the MTA's processes (all_rss_kib).
3. mailq: the time the MTA's queue listing command takes (mailq_s), its
   output read through a pipe; mailq_listed is the count in its last line.
4. a full queue scan: the flush command (both MTAs: `sendmail -q`: Postfix's
   postqueue -f, hikyaku's flush request to qmgr), then the MTA's log is
   followed until it has said `status=deferred` N times since the flush,
   i.e. the queue manager has taken up every deferred message, found its
   destination still unreachable (suspended) and put it back.
   scan_s = time from the flush command to the Nth such line; scanned =
   how many it reached (fewer than N when it stalled: no new line for
   --stall seconds, or --scan-timeout passed). qmgr_scan_hwm_kib = qmgr's
   VmHWM after the scan (peak RSS during it); scan_cpu_s: CPU of the MTA.
5. the queue is emptied with the delete command (delete_s).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import benchlib

HERE = benchlib.HERE


def count_files(top):
    n = 0
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif not e.name.startswith("."):
                        n += 1
        except FileNotFoundError:
            pass
    return n


def qmgr_memory(master):
    pids = benchlib.find_in_tree(master, "qmgr")
    if not pids:
        return None, None
    st = benchlib.status_kib(pids[0]) or {}
    return st.get("VmRSS"), st.get("VmHWM")


def all_rss(master):
    total = 0
    for p in benchlib.descendants(master):
        st = benchlib.status_kib(p)
        if st and "VmRSS" in st:
            total += st["VmRSS"]
    return total


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mta", required=True)
    ap.add_argument("--rep", type=int, default=1)
    ap.add_argument("--target", default="127.0.0.1:2525")
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--deferred-dir", required=True)
    ap.add_argument("--log", required=True, help="the MTA's mail log file")
    ap.add_argument("--flush", required=True, help="shell command: try the deferred queue now")
    ap.add_argument("--mailq", required=True, help="shell command: list the queue")
    ap.add_argument("--delete", required=True, help="shell command: delete every queued message")
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("-c", type=int, default=20)
    ap.add_argument("-m", type=int, default=50)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rcpt", default="bench@relay.test")
    ap.add_argument("--fill-timeout", type=float, default=1800)
    ap.add_argument("--scan-timeout", type=float, default=1200)
    ap.add_argument("--stall", type=float, default=60, help="a scan with no progress for this long has stalled")
    ap.add_argument("--bench-dir", default=os.path.join(HERE, "..", "..", "shared", "bench"))
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    h = benchlib.harness(os.path.abspath(a.bench_dir))
    master = benchlib.read_pid(a.pidfile)
    if master is None:
        sys.exit("FAIL: no master pid in %s" % a.pidfile)
    fails = []
    res = dict(mta=a.mta, workload="deferred", rep=a.rep, label="%s/deferred/%d" % (a.mta, a.rep), n=a.n,
               c=a.c, per_session=a.m, size=a.size)
    os.sync()
    time.sleep(2)
    res["idle_before_pct"] = h.wait_quiet(float(os.environ.get("BENCH_QUIET_WAIT", "0")))
    already = count_files(a.deferred_dir)
    if already:
        fails.append("%d messages were in the deferred queue before the run" % already)

    # 1. fill
    sampler = h.ProcSampler(a.pidfile, None)
    sampler.sample()
    sampler.start()
    cpu0 = benchlib.tree_cpu(master)
    t0 = time.monotonic()
    gen = subprocess.run([sys.executable, os.path.join(HERE, "bench_load.py"), a.target, "-n", str(a.n),
                          "-c", str(a.c), "-m", str(a.m), "-s", str(a.size), "-t", a.rcpt],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        g = json.loads(gen.stdout.decode().strip().splitlines()[-1])
    except Exception:
        g = dict(accepted=None, errors=[gen.stderr.decode(errors="replace")[-300:]])
    if g.get("accepted") != a.n:
        fails.append("accepted %s of %d (%s)" % (g.get("accepted"), a.n, g.get("errors", [])[:3]))
    t_acc = g.get("t_last_accept")
    res["fill_accept_rate"] = a.n / (t_acc - t0) if t_acc and g.get("accepted") == a.n else None
    deferred, t_full = 0, None
    while time.monotonic() < t0 + a.fill_timeout:
        deferred = count_files(a.deferred_dir)
        if deferred >= a.n:
            t_full = time.monotonic()
            break
        time.sleep(0.5)
    res["fill_s"] = (t_full - t0) if t_full else None
    res["fill_rate"] = a.n / (t_full - t0) if t_full else None
    if t_full is None:
        fails.append("only %d of %d deferred within %.0f s" % (deferred, a.n, a.fill_timeout))
    time.sleep(2)
    cpu1 = benchlib.tree_cpu(master)
    sampler.stop()
    res["fill_cpu_s"] = cpu1 - cpu0
    res["fill_cpu_per_1k_s"] = (cpu1 - cpu0) * 1000 / a.n
    res["fill_peak_rss_kib"] = sampler.peak_rss
    res["fill_peak_pss_kib"] = sampler.peak_pss
    res["fill_sum_hwm_kib"] = sum(sampler.hwm.values())

    # 2. memory with the full queue
    res["qmgr_rss_kib"], res["qmgr_hwm_kib"] = qmgr_memory(master)
    res["all_rss_kib"] = all_rss(master)

    # 3. mailq
    t = time.monotonic()
    p = subprocess.run(a.mailq, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    res["mailq_s"] = time.monotonic() - t
    tail = p.stdout[-300:].decode(errors="replace")
    m = re.search(r"in (\d+) Requests?", tail)
    res["mailq_listed"] = int(m.group(1)) if m else None
    res["mailq_bytes"] = len(p.stdout)
    if p.returncode != 0 or res["mailq_listed"] != a.n:
        fails.append("mailq rc=%d listed %s of %d: %r" % (p.returncode, res["mailq_listed"], a.n,
                                                          (tail + p.stderr.decode(errors="replace"))[-200:]))

    # 4. a full scan
    offset = log_size(a.log)
    cpu2 = benchlib.tree_cpu(master)
    t_flush = time.monotonic()
    p = subprocess.run(a.flush, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        fails.append("flush rc=%d: %r" % (p.returncode, p.stdout[-200:]))
    scanned, t_done, t_progress, partial = 0, None, time.monotonic(), b""
    qmgr_peak = 0
    with open(a.log, "rb") as f:
        f.seek(offset)
        while True:
            chunk = f.read()
            if chunk:
                data = partial + chunk
                lines = data.split(b"\n")
                partial = lines.pop()
                got = sum(1 for line in lines if b"status=deferred" in line)
                if got:
                    scanned += got
                    t_progress = time.monotonic()
            rss, hwm = qmgr_memory(master)
            qmgr_peak = max(qmgr_peak, hwm or 0)
            if scanned >= a.n:
                t_done = t_progress
                break
            now = time.monotonic()
            if now - t_progress > a.stall or now - t_flush > a.scan_timeout:
                break
            time.sleep(0.2)
    res["scanned"] = scanned
    res["scan_s"] = (t_done - t_flush) if t_done else None
    res["scan_rate"] = scanned / ((t_done or t_progress) - t_flush) if scanned else None
    if t_done is None:
        fails.append("the scan took up %d of %d deferred messages (no progress for %.0f s or %.0f s passed)" %
                     (scanned, a.n, a.stall, a.scan_timeout))
    time.sleep(1)
    cpu3 = benchlib.tree_cpu(master)
    res["scan_cpu_s"] = cpu3 - cpu2
    res["scan_cpu_per_1k_s"] = (cpu3 - cpu2) * 1000 / a.n
    res["qmgr_scan_rss_kib"], res["qmgr_scan_hwm_kib"] = qmgr_memory(master)
    res["qmgr_scan_hwm_kib"] = max(res["qmgr_scan_hwm_kib"] or 0, qmgr_peak)

    # 5. empty the queue
    t = time.monotonic()
    p = subprocess.run(a.delete, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    left = count_files(a.deferred_dir)
    for _ in range(600):
        if left == 0:
            break
        time.sleep(0.5)
        left = count_files(a.deferred_dir)
    res["delete_s"] = time.monotonic() - t
    if left:
        fails.append("%d messages left in the deferred queue after the delete command (rc=%d %r)" %
                     (left, p.returncode, p.stdout[-200:]))
    res.update(ok=not fails, failures=fails, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with open(a.json, "a") as f:
        f.write(json.dumps(res) + "\n")

    f1 = benchlib.f1
    print("%s: N=%d fill %s msg/s (all deferred after %s s); qmgr RSS %s MiB (peak %s, %s during the scan); "
          "mailq %s s; full scan %s s (%d/%d); delete %s s%s" % (
              res["label"], a.n, f1(res["fill_accept_rate"]), f1(res["fill_s"]),
              f1((res["qmgr_rss_kib"] or 0) / 1024), f1((res["qmgr_hwm_kib"] or 0) / 1024),
              f1(res["qmgr_scan_hwm_kib"] / 1024), f1(res["mailq_s"], "%.2f"), f1(res["scan_s"], "%.2f"),
              scanned, a.n, f1(res["delete_s"]), "" if not fails else "  FAIL: " + "; ".join(fails)), flush=True)
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
