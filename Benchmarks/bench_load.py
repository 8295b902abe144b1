#!/usr/bin/env python3
"""bench_load.py: the SMTP load generator of `make bench`, the shared
harness's smtp-load (../shared/bench/smtp-load) with one addition: it records
when each message's end of DATA was sent and when its 250 came back.

Same behaviour as smtp-load: N messages over C concurrent sessions, M per
session (0 = all on one connection), plain lock-step SMTP without
PIPELINING, the same message (headers From, To, Subject, Message-ID and
`X-Bench-Id: RUN-SEQ`, then the body smtp-load builds), a reply timeout, and
a connection retried when it gets no greeting.

    bench_load.py HOST:PORT -n 5000 -c 20 -m 10 -s 1024 [-t RCPT ...] \
        [--run TOKEN] [--times FILE]
    bench_load.py - --sendmail /usr/sbin/sendmail -n 200 [-t RCPT] [--times FILE]

The second form is workload s: N x `sendmail -i RCPT < message`, one after
another (the message of ../shared/bench/run-sendmail-bench); each call is
timed from its start to its exit, and the CPU time of the sendmail commands
(and what they ran: postdrop, hikyaku-drop) is reported as submit_cpu_s.

Prints one JSON object on stdout: sent, accepted, failed, t_start,
t_last_accept, errors, run. With --times, writes a JSON list of
[seq, t_dot, t_250] (time.monotonic(): comparable across processes) for
every accepted message. Exit status 0 only if every message got a 250.
"""
import argparse
import asyncio
import json
import os
import sys
import time


def build_body(size):
    # as smtp-load does
    line = (b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd"[:74]) + b"\r\n"
    n, r = divmod(size, len(line))
    body = line * n
    if r:
        body += b"x" * max(r - 2, 0) + b"\r\n" if r >= 2 else b""
    return body


class SmtpError(Exception):
    def __init__(self, code, what, lines):
        self.code = code
        super().__init__("%d after %s: %s" % (code, what, b" | ".join(l.strip() for l in lines).decode(errors="replace")))


class Gen:
    def __init__(self, a):
        self.a = a
        self.remaining = a.n
        self.seq = 0
        self.accepted = 0
        self.failed = 0
        self.connects = 0
        self.errors = []
        self.times = []
        self.t_last_accept = None
        self.body = build_body(a.size)
        self.run = a.run or ("%x%x" % (int(time.time()), os.getpid()))
        self.rcpt_cmds = [b"RCPT TO:<%s>\r\n" % t.encode() for t in a.to]
        self.mail_cmd = b"MAIL FROM:<%s>\r\n" % a.sender.encode()
        self.hdr_to = ", ".join(a.to).encode()

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    def message(self, seq):
        hdr = (b"From: <%s>\r\nTo: %s\r\nSubject: bench %d\r\n"
               b"Message-ID: <%s.%d@bench.load>\r\nX-Bench-Id: %s-%d\r\n\r\n" %
               (self.a.sender.encode(), self.hdr_to, seq, self.run.encode(), seq, self.run.encode(), seq))
        return hdr + self.body + b".\r\n"

    async def reply(self, r):
        lines = []
        while True:
            try:
                line = await asyncio.wait_for(r.readline(), self.a.reply_timeout)
            except asyncio.TimeoutError:
                raise ConnectionError("no reply within %.0f s" % self.a.reply_timeout)
            if not line:
                raise ConnectionError("connection closed by server")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(lines[-1][:3]), lines

    async def cmd(self, r, w, line, want):
        w.write(line)
        code, lines = await self.reply(r)
        if code // 100 != want:
            raise SmtpError(code, line[:40].strip().decode(errors="replace"), lines)

    async def session(self):
        host, port = self.a.target.rsplit(":", 1)
        r, w = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port), limit=1 << 16),
                                      self.a.reply_timeout)
        self.connects += 1
        inflight = None
        try:
            code, lines = await self.reply(r)
            if code != 220:
                raise SmtpError(code, "<greeting>", lines)
            await self.cmd(r, w, b"EHLO %s\r\n" % self.a.helo.encode(), 2)
            sent_here = 0
            while self.remaining > 0 and (self.a.per_session <= 0 or sent_here < self.a.per_session):
                self.remaining -= 1
                self.seq += 1
                seq = self.seq
                sent_here += 1
                inflight = seq
                try:
                    await self.cmd(r, w, self.mail_cmd, 2)
                    for rc in self.rcpt_cmds:
                        await self.cmd(r, w, rc, 2)
                    await self.cmd(r, w, b"DATA\r\n", 3)
                    w.write(self.message(seq))
                    await w.drain()
                    t_dot = time.monotonic()
                    code, lines = await self.reply(r)
                    t_250 = time.monotonic()
                    if code // 100 != 2:
                        raise SmtpError(code, "<end of data>", lines)
                    self.accepted += 1
                    inflight = None
                    self.t_last_accept = t_250
                    self.times.append((seq, t_dot, t_250))
                except SmtpError as e:
                    self.failed += 1
                    inflight = None
                    self.err(str(e))
                    if e.code == 421:
                        raise
                    await self.cmd(r, w, b"RSET\r\n", 2)
            w.write(b"QUIT\r\n")
            try:
                await asyncio.wait_for(self.reply(r), 5)
            except Exception:
                pass
        except BaseException:
            if inflight is not None:
                self.failed += 1
            raise
        finally:
            w.close()
            try:
                await w.wait_closed()
            except Exception:
                pass

    async def worker(self):
        fails = 0
        while self.remaining > 0:
            before = self.remaining
            try:
                await self.session()
            except Exception as e:
                self.err("session: %r" % (e,))
                if self.remaining == before:
                    await asyncio.sleep(0.05)
                    fails += 1
                    if fails > 200:
                        return

    async def main(self):
        self.t_start = time.monotonic()
        await asyncio.gather(*(self.worker() for _ in range(self.a.c)))
        self.t_end = time.monotonic()


def sendmail_loop(a):
    """Workload s: N x `sendmail -i RCPT < message`, one after another, as
    ../shared/bench/run-sendmail-bench does (same message); times each call."""
    import resource
    import subprocess
    run = a.run or ("sm%x%x" % (int(time.time()), os.getpid()))
    body = (b"x" * 74 + b"\n") * (a.size // 75)
    rcpt = a.to[0]
    times, errors = [], []
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_start = time.monotonic()
    for seq in range(1, a.n + 1):
        msg = (b"From: <%s>\nTo: <%s>\nSubject: sendmail bench %d\nX-Bench-Id: %s-%d\n\n" %
               (a.sender.encode(), rcpt.encode(), seq, run.encode(), seq)) + body
        t0 = time.monotonic()
        p = subprocess.run([a.sendmail, "-i", rcpt], input=msg, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t1 = time.monotonic()
        if p.returncode == 0:
            times.append((seq, t0, t1))
        elif len(errors) < 20:
            errors.append("sendmail #%d rc=%d %s" % (seq, p.returncode, p.stderr[-200:].decode(errors="replace")))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if a.times:
        with open(a.times, "w") as f:
            json.dump(times, f)
    print(json.dumps(dict(sent=a.n, accepted=len(times), failed=a.n - len(times), t_start=t_start,
                          t_last_accept=times[-1][2] if times else None, t_end=time.monotonic(),
                          submit_cpu_s=(ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
                          errors=errors, run=run)))
    sys.exit(0 if len(times) == a.n else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target")
    p.add_argument("-n", type=int, default=1)
    p.add_argument("-c", type=int, default=1)
    p.add_argument("-m", "--per-session", type=int, default=1)
    p.add_argument("-s", "--size", type=int, default=1024)
    p.add_argument("-f", "--from", dest="sender", default="load@load.test")
    p.add_argument("-t", "--to", action="append")
    p.add_argument("--helo", default="load.test")
    p.add_argument("--reply-timeout", type=float, default=30.0)
    p.add_argument("--run")
    p.add_argument("--times")
    p.add_argument("--sendmail", help="workload s: submit through this sendmail command instead of SMTP "
                                      "(target, -c, -m are then ignored)")
    a = p.parse_args()
    a.to = a.to or ["bench@bench.test"]
    if a.sendmail:
        return sendmail_loop(a)
    g = Gen(a)
    asyncio.run(g.main())
    if a.times:
        with open(a.times, "w") as f:
            json.dump(g.times, f)
    print(json.dumps(dict(sent=g.seq, accepted=g.accepted, failed=g.failed + (a.n - g.seq), t_start=g.t_start,
                          t_last_accept=g.t_last_accept, t_end=g.t_end, connects=g.connects,
                          errors=g.errors, run=g.run)))
    sys.exit(0 if g.accepted == a.n else 1)


if __name__ == "__main__":
    main()
