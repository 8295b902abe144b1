#!/usr/bin/env python3
"""Start-up stress for the chrooted programs (not part of `make test`).

The chrooted programs (smtpd, cleanup, qmgr) have no /proc; libdispatch
needs it, so they are written to run on NIO event loops only. This starts
them over and over (SIGKILL, the master restarts them) while a client keeps
sending mail, and then counts every way a program ended other than our
SIGKILLs: a crash would show up as another signal or an exit status.

    python3 Tests/System/stress_startups.py [KILLS]      (as root, after a build)
"""
import os
import random
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # noqa: E402


def main():
    kills_wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    conftest.ensure_users()
    import tempfile
    root = tempfile.mkdtemp(prefix="hikyaku-stress-", dir="/tmp")
    mta = conftest.MTA(root, conftest.free_port())
    mta.start()
    stop = threading.Event()
    sent = [0]

    def sender():
        while not stop.is_set():
            try:
                with mta.smtp() as client:
                    client.sendmail("a@example.org", ["hkt-alice@example.test"], "Subject: s\r\n\r\nx\r\n")
                sent[0] += 1
            except Exception:
                time.sleep(0.01)

    thread = threading.Thread(target=sender)
    thread.start()
    kills = 0
    rng = random.Random(7)
    started = time.time()
    try:
        while kills < kills_wanted:
            program = rng.choice(["smtpd", "cleanup", "qmgr"])
            deadline = time.time() + 30
            pids = []
            while not pids and time.time() < deadline:
                pids = mta.pids().get(program, [])
                time.sleep(0.005)
            if not pids:
                raise SystemExit(f"{program} did not come back")
            # Let it get through start-up (config, chroot, NIO) first.
            time.sleep(rng.uniform(0.02, 0.15))
            try:
                os.kill(pids[0], signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
    finally:
        stop.set()
        thread.join()
        mta.stop()
    log = mta.log()
    endings = re.findall(r"warning: process \S+/(\w+) pid \d+ (.*)", log)
    other = [e for e in endings if e[1] != "killed by signal 9"]
    print(f"{kills} kills in {time.time() - started:.0f} s, {sent[0]} messages sent meanwhile, "
          f"{len(endings)} program endings logged, {len(other)} not by our SIGKILL: {other[:10]}")
    print(f"log and spool kept in {root}")
    raise SystemExit(1 if other else 0)


if __name__ == "__main__":
    main()
