#!/usr/bin/env python3
"""One idle-sessions run against an MTA that is already listening: opens
SESSIONS SMTP connections that read the greeting, say EHLO and then stay
idle; while they are all held, sends MESSAGES ordinary messages, one after
another, each over a fresh connection, timing every reply; then reads the
memory of the MTA's processes, checks that the idle sessions still answer,
and closes them. Prints one JSON line.

    idle_bench.py --name hikyaku --target 127.0.0.1:2625 --master-pid PID \
        [--sessions 5000] [--messages 100] [--rcpt bench@bench.test] \
        [--maildir ~bench/Maildir] [--sources 127.0.0.1]

The MTA's processes are the master PID and all its descendants. smtpd
processes are those whose comm is 'smtpd'. Memory figures, in KiB:
  smtpd_hwm_kib_sum   VmHWM (peak RSS) of each smtpd process, summed
  smtpd_rss_kib_sum   VmRSS of each smtpd process, summed
  all_rss_kib_sum     VmRSS of every process of the MTA, summed (shared pages
                      counted once per process, as ps and top do)
  all_hwm_kib_sum     VmHWM of every process, summed
  all_pss_kib_sum     PSS of every process, summed (shared pages divided among
                      the processes that map them: the memory really used)
all read while the idle sessions are held, after the messages went through.
Latencies are from sending a command (or connecting, for the greeting) to
the end of its reply; latency_max_ms and latency_p99_ms are over every reply
of every message, message_max_ms over whole transactions (connect to 221).
Exits 1 if a message was not accepted, a reply took 1 s or more, fewer
sessions than asked for could be opened, or (with --maildir) fewer messages
than sent were delivered.
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time

from benchlib import descendants


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def status_fields(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Name", "VmRSS", "VmHWM"):
                    fields[key] = value.split()[0] if key != "Name" else value.strip()
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    fields["Pss"] = line.split()[1]
    except OSError:
        return None
    return fields


def memory(master_pid):
    out = {"procs": 0, "smtpd_procs": 0, "smtpd_hwm_kib_sum": 0, "smtpd_rss_kib_sum": 0,
           "all_rss_kib_sum": 0, "all_hwm_kib_sum": 0, "all_pss_kib_sum": 0}
    for pid in descendants(master_pid):
        fields = status_fields(pid)
        if not fields or "VmRSS" not in fields:
            continue   # gone, or a kernel thread
        rss, hwm, pss = int(fields["VmRSS"]), int(fields.get("VmHWM", 0)), int(fields.get("Pss", 0))
        out["procs"] += 1
        out["all_rss_kib_sum"] += rss
        out["all_hwm_kib_sum"] += hwm
        out["all_pss_kib_sum"] += pss
        if fields.get("Name") == "smtpd":
            out["smtpd_procs"] += 1
            out["smtpd_hwm_kib_sum"] += hwm
            out["smtpd_rss_kib_sum"] += rss
    return out


def maildir_count(path):
    n = 0
    for sub in ("new", "cur"):
        try:
            n += sum(1 for e in os.scandir(os.path.join(path, sub)) if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n


def clean_maildir(path):
    for sub in ("new", "cur", "tmp"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            for e in os.scandir(d):
                os.unlink(e.path)


async def read_reply(reader):
    """One SMTP reply (all its lines); raises on EOF."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed" + (": " + " | ".join(lines) if lines else ""))
        text = line.decode(errors="replace").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return lines


class Idle:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer


async def open_idle(host, port, source, timeout):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0), limit=4096), timeout)
    greeting = await asyncio.wait_for(read_reply(reader), timeout)
    if not greeting[-1].startswith("220 "):
        writer.close()
        raise ConnectionError("greeting: " + " | ".join(greeting))
    writer.write(b"EHLO idle.bench.example\r\n")
    reply = await asyncio.wait_for(read_reply(reader), timeout)
    if not reply[-1].startswith("250 "):
        writer.close()
        raise ConnectionError("EHLO: " + " | ".join(reply))
    return Idle(reader, writer)


async def one_message(host, port, seq, rcpt, run_id):
    """A whole transaction on a fresh connection; returns the latency of
    every reply (seconds) and of the whole, and whether it was queued."""
    latencies = []
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        greeting = await read_reply(reader)
        latencies.append(time.monotonic() - t0)
        if not greeting[-1].startswith("220 "):
            return latencies, time.monotonic() - t0, False, greeting[-1]
        body = (f"From: idle-bench@client.example\r\nTo: {rcpt}\r\nSubject: idle bench {seq}\r\n"
                f"X-Bench-Id: {run_id}-{seq}\r\n\r\n" + "x" * 70 + "\r\n")
        steps = [("EHLO probe.bench.example", "250"), ("MAIL FROM:<idle-bench@client.example>", "250"),
                 (f"RCPT TO:<{rcpt}>", "250"), ("DATA", "354"), (body + ".", "250"), ("QUIT", "221")]
        for command, want in steps:
            t = time.monotonic()
            writer.write(command.encode() + b"\r\n")
            reply = await read_reply(reader)
            latencies.append(time.monotonic() - t)
            if not reply[-1].startswith(want):
                return latencies, time.monotonic() - t0, False, reply[-1]
        return latencies, time.monotonic() - t0, True, ""
    finally:
        writer.close()


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


async def run(a):
    host, port = a.target.rsplit(":", 1)
    port = int(port)
    sources = a.sources.split(",")
    idle, failures = [], []
    semaphore = asyncio.Semaphore(a.parallel)
    t_open = time.monotonic()

    async def opener(n):
        async with semaphore:
            for attempt in range(3):
                try:
                    idle.append(await open_idle(host, port, sources[n % len(sources)], 60))
                    return
                except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                    error = e
                    await asyncio.sleep(0.2)
            failures.append(repr(error))

    await asyncio.gather(*(opener(n) for n in range(a.sessions)))
    open_seconds = time.monotonic() - t_open
    log(f"{a.name}: {len(idle)} idle sessions open in {open_seconds:.1f} s" +
        (f", {len(failures)} failed, e.g. {failures[0]}" if failures else ""))
    await asyncio.sleep(a.settle)

    run_id = f"idle{int(time.time())}"
    all_latencies, totals, accepted, errors = [], [], 0, []
    for seq in range(a.messages):
        latencies, total, ok, error = await one_message(host, port, seq, a.rcpt, run_id)
        all_latencies += latencies
        totals.append(total)
        accepted += ok
        if not ok:
            errors.append(error)
    mem = memory(a.master_pid)

    # The idle sessions are still there and answer.
    alive = 0
    for session in idle[:: max(1, len(idle) // 100)]:
        try:
            session.writer.write(b"NOOP\r\n")
            reply = await asyncio.wait_for(read_reply(session.reader), 10)
            alive += reply[-1].startswith("250")
        except (OSError, ConnectionError, asyncio.TimeoutError):
            pass
    checked = len(idle[:: max(1, len(idle) // 100)])
    for session in idle:
        session.writer.close()

    result = {
        "mta": a.name, "workload": "idle", "sessions": a.sessions, "sessions_open": len(idle),
        "open_seconds": round(open_seconds, 2), "messages": a.messages, "accepted": accepted,
        "latency_max_ms": round(max(all_latencies) * 1000, 2) if all_latencies else None,
        "latency_p99_ms": round(percentile(all_latencies, 99) * 1000, 2) if all_latencies else None,
        "latency_p50_ms": round(percentile(all_latencies, 50) * 1000, 2) if all_latencies else None,
        "message_max_ms": round(max(totals) * 1000, 2) if totals else None,
        "message_p99_ms": round(percentile(totals, 99) * 1000, 2) if totals else None,
        "idle_alive_checked": checked, "idle_alive": alive,
        **mem,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if errors:
        result["errors"] = errors[:5]
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--master-pid", type=int, required=True)
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--rcpt", default="bench@bench.test")
    p.add_argument("--maildir", default=None, help="count deliveries here (emptied first)")
    p.add_argument("--sources", default="127.0.0.1", help="comma-separated source addresses for the idle sessions")
    p.add_argument("--parallel", type=int, default=50, help="connections being opened at once")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait after opening")
    p.add_argument("--delivery-timeout", type=float, default=120)
    p.add_argument("--label", default="")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.sessions + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.sessions + 1000), hard))
    if a.maildir:
        clean_maildir(a.maildir)
    result = asyncio.run(run(a))
    if a.label:
        result["label"] = a.label
    delivered_ok = True
    if a.maildir:
        deadline = time.monotonic() + a.delivery_timeout
        while maildir_count(a.maildir) < result["accepted"] and time.monotonic() < deadline:
            time.sleep(0.1)
        result["delivered"] = maildir_count(a.maildir)
        delivered_ok = result["delivered"] == result["accepted"]
    print(json.dumps(result), flush=True)
    ok = (result["sessions_open"] == a.sessions and result["accepted"] == a.messages and delivered_ok
          and result["latency_max_ms"] is not None and result["latency_max_ms"] < 1000
          and result["idle_alive"] == result["idle_alive_checked"])
    if not ok:
        log(f"FAIL: {a.name}: sessions {result['sessions_open']}/{a.sessions}, accepted {result['accepted']}/{a.messages}, "
            f"delivered {result.get('delivered')}, max latency {result['latency_max_ms']} ms, "
            f"idle alive {result['idle_alive']}/{result['idle_alive_checked']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
