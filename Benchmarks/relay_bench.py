#!/usr/bin/env python3
"""One relay run: N messages into an MTA over C SMTP sessions, relayed by the
MTA to Postfix's smtp-sink; prints a JSON line with the accept rate and the
relay rate (messages the sink received per second, from the first message
sent to the last one received).

    relay_bench.py --name hikyaku --target 127.0.0.1:2525 --sink-port 2626 \
        [-n 5000] [-c 20] [-m 10] [--size 1024] [--bench-dir ../shared/bench]

The MTA must already send mail for relay.test to 127.0.0.1:SINK_PORT.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--sink-port", type=int, default=2626)
    p.add_argument("-n", type=int, default=5000)
    p.add_argument("-c", type=int, default=20)
    p.add_argument("-m", type=int, default=10)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--bench-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
    a = p.parse_args()
    bench = os.path.abspath(a.bench_dir)

    out_path = f"/tmp/relay-sink-{os.getpid()}.out"
    out = open(out_path, "wb")
    sink = subprocess.Popen([os.path.join(bench, "smtp-sink"), "-u", "nobody", "-c", f"127.0.0.1:{a.sink_port}", "1024"],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(0.5)

    def received():
        with open(out_path, "rb") as f:
            counts = re.findall(rb"mesg=(\d+)", f.read())
        return int(counts[-1]) if counts else 0

    try:
        start = time.monotonic()
        load = subprocess.run([os.path.join(bench, "smtp-load"), "-n", str(a.n), "-c", str(a.c), "-m", str(a.m),
                               "-s", str(a.size), "-f", "sender@client.example", "-t", "bench@relay.test", a.target],
                              capture_output=True, text=True)
        accepted = json.loads(load.stdout)
        deadline = time.monotonic() + a.timeout
        last = 0
        while time.monotonic() < deadline:
            last = received()
            if last >= a.n:
                break
            time.sleep(0.05)
        done = time.monotonic()
        accept_seconds = accepted["t_last_accept"] - accepted["t_start"]
        result = {
            "mta": a.name, "workload": "relay", "n": a.n, "c": a.c, "m": a.m, "size": a.size,
            "accepted": accepted["accepted"], "relayed": last,
            "accept_rate": round(accepted["accepted"] / accept_seconds, 1) if accept_seconds > 0 else None,
            "relay_rate": round(last / (done - start), 1),
            "seconds": round(done - start, 2),
        }
        print(json.dumps(result))
        return 0 if last >= a.n else 1
    finally:
        os.killpg(sink.pid, 15)
        sink.wait()
        os.unlink(out_path)


if __name__ == "__main__":
    sys.exit(main())
