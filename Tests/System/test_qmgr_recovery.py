"""qmgr under faults: a killed qmgr does not deliver twice what its agents
were still delivering, a missing aliasd delays mail by seconds rather than a
retry period, and a flush takes more deferred mail than the active limit."""
import asyncio
import os
import signal
import subprocess
import threading
import time

from conftest import BIN, free_port


class SlowSink:
    """An SMTP server on 127.0.0.1 that answers end of DATA after `delay`
    seconds and counts the messages it accepted (by Subject)."""

    def __init__(self, delay=0.0, port=None):
        self.delay = delay
        self.port = port or free_port()
        self.accepted = []
        self.data_started = threading.Event()
        self.loop = None
        ready = threading.Event()
        threading.Thread(target=self.run, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def run(self, ready):
        async def session(reader, writer):
            async def reply(text):
                writer.write(text.encode() + b"\r\n")
                await writer.drain()
            try:
                await reply("220 sink")
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        await reply("250-sink\r\n250 PIPELINING")
                    elif verb == b"DATA":
                        await reply("354 go")
                        self.data_started.set()
                        subject = ""
                        while True:
                            data = await reader.readline()
                            if data in (b".\r\n", b""):
                                break
                            if data.lower().startswith(b"subject:"):
                                subject = data[8:].strip().decode()
                        await asyncio.sleep(self.delay)
                        self.accepted.append(subject)
                        await reply("250 2.0.0 Ok")
                    elif verb == b"QUIT":
                        await reply("221 bye")
                        break
                    else:
                        await reply("250 ok")
            except ConnectionError:
                pass
            writer.close()

        async def main():
            self.loop = asyncio.get_running_loop()
            server = await asyncio.start_server(session, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await server.serve_forever()
        asyncio.run(main())


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def queue_empty(mta):
    return not any(mta.queue_files(q) for q in ("incoming", "active", "deferred"))


def test_a_killed_qmgr_does_not_repeat_a_remote_delivery_in_flight(make_mta):
    # The server answers end of DATA 3 s late; qmgr is killed meanwhile.
    # smtp-client carries on and marks the recipient delivered in the queue
    # file; the next qmgr waits for it to let go of the file and finds the
    # recipient done.
    sink = SlowSink(delay=3)
    mta = make_mta(start=False)
    with open(os.path.join(mta.etc, "mailertable"), "w") as f:
        f.write(f"remote.test\tesmtp:[127.0.0.1]:{sink.port}\n")
    mta.write_config(f"mailertable_map = {mta.etc}/mailertable\nminimal_backoff_time = 1s\nqueue_run_delay = 1s\n")
    mta.start()
    with mta.smtp() as s:
        s.sendmail("hkt-alice@example.test", ["someone@remote.test"], "Subject: once\r\n\r\nonly once\r\n")
    assert sink.data_started.wait(20)
    qmgr = mta.pids()["qmgr"][0]
    os.kill(qmgr, signal.SIGKILL)
    wait_until(lambda: queue_empty(mta), 60, "the queue to empty")
    time.sleep(sink.delay + 1)
    log = mta.log()
    assert sink.accepted == ["once"], (sink.accepted, log)
    assert "is still delivering this message; waiting for it" in log, log


def test_a_killed_qmgr_does_not_repeat_a_local_delivery_in_flight(make_mta):
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"hikyaku-slow-{os.getpid()}-{time.time_ns()}")
    os.makedirs(out)
    os.chmod(out, 0o1777)
    command = f"|/bin/sh -c 'echo start >> {out}/log; sleep 3; cat >> {out}/copies'"
    mta = make_mta(aliases=f"postmaster: root\nslow: \"{command}\"\n")
    with mta.smtp() as s:
        s.sendmail("hkt-alice@example.test", ["slow@example.test"], "Subject: once\r\n\r\nonly once\r\n")
    wait_until(lambda: os.path.exists(f"{out}/log"), 30, "the command to start")
    os.kill(mta.pids()["qmgr"][0], signal.SIGKILL)
    wait_until(lambda: queue_empty(mta), 60, "the queue to empty")
    time.sleep(4)
    log = mta.log()
    assert open(f"{out}/log").read().count("start") == 1, log
    assert open(f"{out}/copies").read().count("only once") == 1, log


def test_mail_waits_seconds_for_a_missing_aliasd_not_a_retry_period(make_mta):
    # aliasd's socket gone for 3 s (as while the master restarts it): the
    # recipients are asked about again each second, and delivered as soon
    # as it is back, instead of being deferred for minimal_backoff_time.
    mta = make_mta(config_extra="minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\nqueue_run_delay = 1h\n")
    socket = os.path.join(mta.spool, "private", "aliasd")
    assert os.path.exists(socket)
    aside = socket + ".aside"
    # smtpd asks aliasd too: the message goes in first, with qmgr stopped.
    qmgr = mta.pids()["qmgr"][0]
    os.kill(qmgr, signal.SIGSTOP)
    try:
        with mta.smtp() as s:
            s.sendmail("hkt-alice@example.test", ["hkt-bob@example.test"], "Subject: wait\r\n\r\nwaiting\r\n")
        # Killed, aliasd is started again by the master on the same
        # listening socket, whose name is now out of qmgr's way.
        os.rename(socket, aside)
        for pid in mta.pids().get("aliasd", []):
            os.kill(pid, signal.SIGKILL)
    finally:
        os.kill(qmgr, signal.SIGCONT)
    try:
        wait_until(lambda: "address resolver unavailable" in mta.log(), 20, "qmgr to find aliasd missing")
        time.sleep(2)
    finally:
        os.rename(aside, socket)
    wait_until(lambda: queue_empty(mta), 30, "the message to be delivered")
    log = mta.log()
    assert "trying again" in log, log
    assert "status=deferred" not in log, log
    assert "status=sent" in log, log


def test_a_flush_takes_more_deferred_mail_than_the_active_limit(make_mta):
    # 30 messages deferred (their server was down), qmgr_message_active_limit
    # 5: a flush delivers all of them, not 5 and the rest at the next queue
    # run an hour later.
    port = free_port()
    mta = make_mta(start=False)
    with open(os.path.join(mta.etc, "mailertable"), "w") as f:
        f.write(f"remote.test\tesmtp:[127.0.0.1]:{port}\n")
    mta.write_config(f"mailertable_map = {mta.etc}/mailertable\nqmgr_message_active_limit = 5\n"
                     "minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\nqueue_run_delay = 1h\n")
    mta.start()
    with mta.smtp() as s:
        for n in range(30):
            s.sendmail("hkt-alice@example.test", ["someone@remote.test"], f"Subject: m{n}\r\n\r\nbody {n}\r\n")
    wait_until(lambda: len(mta.queue_files("deferred")) == 30, 60, "30 deferred messages")
    sink = SlowSink(port=port)
    subprocess.run([os.path.join(BIN, "hikyaku"), "queue", "flush", "-c", mta.config], check=True,
                   capture_output=True, timeout=30)
    wait_until(lambda: queue_empty(mta), 60, "the flushed queue to empty")
    assert sorted(sink.accepted) == sorted(f"m{n}" for n in range(30))


def test_a_retried_alias_does_not_repeat_the_members_it_delivered(make_mta):
    # One member of the alias defers every time (the command exits 75,
    # EX_TEMPFAIL); the other is a mailbox. Each retry of the recipient
    # tries the command again, and does not write the mailbox again.
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"hikyaku-tempfail-{os.getpid()}-{time.time_ns()}")
    os.makedirs(out)
    os.chmod(out, 0o1777)
    command = f"|/bin/sh -c 'echo try >> {out}/tries; exit 75'"
    mta = make_mta(config_extra="minimal_backoff_time = 1s\nmaximal_backoff_time = 1s\nqueue_run_delay = 1s\n",
                   aliases=f"postmaster: root\nboth: hkt-bob, \"{command}\"\n")
    with mta.smtp() as s:
        s.sendmail("hkt-alice@example.test", ["both@example.test"], "Subject: twice?\r\n\r\nonce for bob\r\n")
    wait_until(lambda: os.path.exists(f"{out}/tries") and open(f"{out}/tries").read().count("try") >= 3, 60,
               "three tries of the command")
    log = mta.log()
    assert log.count("status=deferred") >= 3, log
    assert mta.mbox("hkt-bob").count(b"once for bob") == 1, log
    journal = os.path.join(mta.spool, "defer")
    assert any(name.endswith(".leaves") for name in os.listdir(journal))
    # Deleted with the message: nothing is left behind.
    def delete_all():
        # A message in active/ is not deleted: try until it is between tries.
        subprocess.run([os.path.join(BIN, "hikyaku"), "queue", "delete", "-c", mta.config, "ALL"],
                       capture_output=True, timeout=30)
        return queue_empty(mta)
    wait_until(delete_all, 30, "the queue to empty")
    assert not any(name.endswith(".leaves") for name in os.listdir(journal))
