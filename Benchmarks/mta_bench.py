#!/usr/bin/env python3
"""mta_bench.py: one run of one `make bench` workload against an MTA that is
already running; appends one JSON line to --json.

    mta_bench.py --mta hikyaku --workload a --rep 1 --target 127.0.0.1:2525 \
        --pidfile SPOOL/pid/master.pid --json OUT [-n N] [--sendmail PATH] \
        [--sink-port 2626] [--bench-dir ../shared/bench]

Workloads (N can be changed with -n; the rest is fixed):
  a      N=5000 x 1 KiB to bench@bench.test, 20 sessions, 10 messages each
  b      N=1000 x 100 KiB, same
  c      N=200 x 1 KiB to fanout@bench.test (alias of 50 local users), 20 x 10
  d      N=200 x 1 KiB with 50 RCPTs fan01..fan50, 20 x 10
  s      N=200 x `sendmail -i bench@bench.test < msg` (1 KiB), one after another
  relay  N=5000 x 1 KiB to bench@relay.test, 20 x 10; the MTA relays to
         Postfix's smtp-sink on 127.0.0.1:SINK_PORT (started here, dumping
         each message to a file)

Figures (JSON fields):
  accept_rate      N / (last 250 after DATA - start)  [s: last sendmail exit]
  e2e_rate         N / (last delivery - start); deliveries_per_s the same
                   for every delivered copy (c, d: 50 per message)
  accept_p50_ms, accept_p99_ms
                   time from sending the end of DATA (the final ".") to the
                   250 reply [s: a sendmail call, from start to exit]
  deliver_p50_ms, deliver_p99_ms
                   time from sending the end of DATA [s: starting sendmail]
                   to the delivered file's appearance: in the recipient's
                   Maildir new/ (created or renamed into it), or for relay,
                   smtp-sink's dump file closed; one value per delivered copy.
                   Files are timestamped with inotify as they appear.
  cpu_s, cpu_per_1k_s
                   CPU seconds (user + system) of the MTA's processes over the
                   run: the master and everything below it, from
                   /proc/PID/stat (utime + stime + cutime + cstime of every
                   live process of the tree: a child that exits and is reaped
                   moves into its parent's cutime/cstime), after minus before;
                   for s plus the sendmail commands and what they run
                   (postdrop, hikyaku-drop: submit_cpu_s). Per 1,000 messages.
  peak_rss_kib, peak_pss_kib, sum_hwm_kib, peak_procs
                   from the shared harness's sampler (every 0.2 s, the master's
                   process tree): the largest sum of VmRSS (and PSS) over the
                   processes alive at one moment; the sum over every PID seen
                   of its VmHWM.
The run fails (ok=false, exit 1) unless every message got its 250 and every
Maildir (or the sink) got every X-Bench-Id exactly once.
"""
import argparse
import glob
import json
import os
import pwd
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import benchlib

HERE = benchlib.HERE

WORKLOADS = {
    # name: (n, sessions, msgs/session, size, recipients)
    "a": (5000, 20, 10, 1024, ["bench@bench.test"]),
    "b": (1000, 20, 10, 102400, ["bench@bench.test"]),
    "c": (200, 20, 10, 1024, ["fanout@bench.test"]),
    "d": (200, 20, 10, 1024, ["fan%02d@bench.test" % i for i in range(1, 51)]),
    "s": (200, 1, 1, 1024, ["bench@bench.test"]),
    "relay": (5000, 20, 10, 1024, ["bench@relay.test"]),
}


def home(user):
    return pwd.getpwnam(user).pw_dir


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mta", required=True)
    ap.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    ap.add_argument("--rep", type=int, default=1)
    ap.add_argument("--target", default="127.0.0.1:2525")
    ap.add_argument("--pidfile", required=True, help="the MTA's master pid file")
    ap.add_argument("-n", type=int, help="messages (default: the workload's)")
    ap.add_argument("--sendmail", help="workload s: the MTA's sendmail command")
    ap.add_argument("--sink-port", type=int, default=2626)
    ap.add_argument("--bench-dir", default=os.path.join(HERE, "..", "..", "shared", "bench"))
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--settle", type=float, default=3, help="seconds to wait (after sync) before the run")
    ap.add_argument("--quiet-wait", type=float, default=float(os.environ.get("BENCH_QUIET_WAIT", "0")))
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    bench = os.path.abspath(a.bench_dir)
    h = benchlib.harness(bench)
    n, sessions, per_session, size, rcpts = WORKLOADS[a.workload]
    n = a.n or n
    w = a.workload

    # where the copies appear
    sink, sink_dir = None, None
    if w == "relay":
        sink_dir = tempfile.mkdtemp(prefix="bench-sink-")
        shutil.chown(sink_dir, "nobody")
        watch_dirs, mask = [sink_dir], benchlib.IN_CLOSE_WRITE
        maildirs = []
    else:
        if w in ("c", "d"):
            maildirs = sorted(glob.glob(os.path.join(os.path.dirname(home("bench")), "fan[0-5][0-9]", "Maildir")))
            assert len(maildirs) == 50, maildirs
        else:
            maildirs = [os.path.join(home("bench"), "Maildir")]
        h.clean_maildirs(maildirs)
        watch_dirs, mask = [os.path.join(d, "new") for d in maildirs], benchlib.IN_CREATE | benchlib.IN_MOVED_TO
    expect = n * (50 if w in ("c", "d") else 1)

    fails = []
    times_file = tempfile.mktemp(prefix="bench-times-", suffix=".json")
    try:
        if w == "relay":
            sink = subprocess.Popen([os.path.join(bench, "smtp-sink"), "-u", "nobody", "-d", sink_dir + "/",
                                     "127.0.0.1:%d" % a.sink_port, "1024"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            if not wait_port(a.sink_port):
                sys.exit("FAIL: smtp-sink does not listen on %d" % a.sink_port)

        os.sync()
        time.sleep(a.settle)
        idle_before = h.wait_quiet(a.quiet_wait)
        master = benchlib.read_pid(a.pidfile)
        if master is None:
            sys.exit("FAIL: no master pid in %s" % a.pidfile)
        watcher = benchlib.DirWatcher(watch_dirs, mask)
        sampler = h.ProcSampler(a.pidfile, None)
        sampler.sample()
        sampler.start()
        cpu0 = benchlib.tree_cpu(master)
        mcpu0 = h.cpu_times()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)

        cmd = [sys.executable, os.path.join(HERE, "bench_load.py"), a.target, "-n", str(n), "-c", str(sessions),
               "-m", str(per_session), "-s", str(size), "--times", times_file]
        for r in rcpts:
            cmd += ["-t", r]
        if w == "s":
            cmd += ["--sendmail", a.sendmail]
        t0 = time.monotonic()
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = t0 + a.timeout
        while len(watcher.seen) < expect and time.monotonic() < deadline:
            watcher.pump(0.2)
            if gen.poll() is not None and gen.returncode != 0 and len(watcher.seen) == 0 \
                    and time.monotonic() > t0 + 30:
                break
        t_last = max(watcher.seen.values()) if len(watcher.seen) >= expect else None
        try:
            out, err = gen.communicate(timeout=max(5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            gen.kill()
            out, err = gen.communicate()
        # a grace second for duplicates, and for the work the MTA does after
        # the last delivery (removing queue files): it is part of the cost
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            watcher.pump(end - time.monotonic())
        cpu1 = benchlib.tree_cpu(master)
        mcpu1 = h.cpu_times()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampler.stop()
        watcher.close()

        try:
            g = json.loads(out.decode().strip().splitlines()[-1])
        except Exception:
            g = dict(accepted=None, errors=["cannot parse the generator's output: %r %r" % (out[-300:], err[-300:])])
        if g.get("accepted") != n:
            fails.append("accepted %s of %d (%s)" % (g.get("accepted"), n, g.get("errors", [])[:3]))
        times = {}
        try:
            with open(times_file) as f:
                times = {seq: (t_dot, t_250) for seq, t_dot, t_250 in json.load(f)}
        except (OSError, ValueError):
            pass

        # which message each file is, and its delay
        run = g.get("run", "")
        tag = ("X-Bench-Id: %s-" % run).encode()
        per_dir, delays, unknown = {}, [], 0
        for path, t_seen in watcher.seen.items():
            try:
                with open(path, "rb") as f:
                    head = f.read(16384)
            except OSError:
                # moved on (new/ -> cur/) or gone: look in cur/ by name
                unknown += 1
                continue
            i = head.find(tag)
            if i < 0:
                unknown += 1
                continue
            j = i + len(tag)
            k = j
            while k < len(head) and head[k:k + 1].isdigit():
                k += 1
            seq = int(head[j:k])
            d = os.path.dirname(path)
            per_dir.setdefault(d, {})
            per_dir[d][seq] = per_dir[d].get(seq, 0) + 1
            if seq in times:
                delays.append(t_seen - times[seq][0])
        delivered = len(watcher.seen)
        if len(watcher.seen) < expect:
            fails.append("only %d of %d deliveries within %.0f s" % (len(watcher.seen), expect, a.timeout))
        elif delivered > expect:
            fails.append("%d deliveries, more than the %d expected" % (delivered, expect))
        for d in watch_dirs:
            got = per_dir.get(d, {})
            dups = sum(v - 1 for v in got.values())
            if len(got) != n or dups:
                fails.append("%s: %d distinct of %d, %d duplicates" % (d, len(got), n, dups))
        if unknown:
            fails.append("%d files without this run's X-Bench-Id" % unknown)

        accepts = [t_250 - t_dot for t_dot, t_250 in times.values()]
        t_acc = g.get("t_last_accept")
        cpu_s = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
        submit_cpu = g.get("submit_cpu_s")
        if cpu_s is not None and submit_cpu is not None:
            cpu_s += submit_cpu
        busy = mcpu1[0] - mcpu0[0]
        idle = mcpu1[1] - mcpu0[1]
        iow = mcpu1[2] - mcpu0[2]
        tot = max(busy + idle + iow, 1)

        def ms(x):
            return None if x is None else round(1000 * x, 3)

        res = dict(
            mta=a.mta, workload=w, rep=a.rep, label="%s/%s/%d" % (a.mta, w, a.rep),
            n=n, c=sessions, per_session=per_session, size=size, rcpts=len(rcpts), expect=expect,
            accepted=g.get("accepted"), delivered=delivered,
            accept_s=(t_acc - t0) if t_acc else None, e2e_s=(t_last - t0) if t_last else None,
            accept_rate=(n / (t_acc - t0)) if t_acc and g.get("accepted") == n else None,
            e2e_rate=(n / (t_last - t0)) if t_last else None,
            deliveries_per_s=(expect / (t_last - t0)) if t_last else None,
            accept_p50_ms=ms(benchlib.percentile(accepts, 50)), accept_p99_ms=ms(benchlib.percentile(accepts, 99)),
            accept_max_ms=ms(max(accepts)) if accepts else None,
            deliver_p50_ms=ms(benchlib.percentile(delays, 50)), deliver_p99_ms=ms(benchlib.percentile(delays, 99)),
            deliver_max_ms=ms(max(delays)) if delays else None,
            cpu_s=cpu_s, submit_cpu_s=submit_cpu, cpu_per_1k_s=(cpu_s * 1000 / n) if cpu_s is not None else None,
            peak_rss_kib=sampler.peak_rss, peak_pss_kib=sampler.peak_pss, peak_procs=sampler.peak_procs,
            sum_hwm_kib=sum(sampler.hwm.values()), distinct_pids=len(sampler.hwm),
            machine_busy_pct=100.0 * busy / tot, machine_iowait_pct=100.0 * iow / tot, idle_before_pct=idle_before,
            gen_cpu_s=(ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) - (submit_cpu or 0),
            connects=g.get("connects"), gen_errors=g.get("errors", [])[:5],
            ok=not fails, failures=fails[:10], time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        with open(a.json, "a") as f:
            f.write(json.dumps(res) + "\n")

        f1 = benchlib.f1
        print("%s: N=%d accept %s msg/s, e2e %s msg/s; 250 after DATA p50/p99 %s/%s ms; delivery p50/p99 %s/%s ms; "
              "CPU %s s/1000 msgs; peak RSS %s MiB (PSS %s) over %d procs%s" % (
                  res["label"], n, f1(res["accept_rate"]), f1(res["e2e_rate"]), f1(res["accept_p50_ms"]),
                  f1(res["accept_p99_ms"]), f1(res["deliver_p50_ms"]), f1(res["deliver_p99_ms"]),
                  f1(res["cpu_per_1k_s"], "%.2f"), f1(res["peak_rss_kib"] / 1024), f1(res["peak_pss_kib"] / 1024),
                  res["peak_procs"], "" if res["ok"] else "  FAIL: " + "; ".join(fails[:3])), flush=True)
        return 0 if res["ok"] else 1
    finally:
        if sink is not None:
            try:
                os.killpg(sink.pid, 15)
            except ProcessLookupError:
                pass
            sink.wait()
        if sink_dir:
            shutil.rmtree(sink_dir, ignore_errors=True)
        try:
            os.unlink(times_file)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
