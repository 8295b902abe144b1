"""Kill -9 the pipeline's programs at random while mail flows: every message
that was answered with 250 is delivered at least once."""
import os
import random
import re
import signal
import smtplib
import threading
import time

MESSAGES = int(os.environ.get("HIKYAKU_FAULT_MESSAGES", "2000"))
SENDERS = 8
USERS = ["hkt-alice", "hkt-bob", "hkt-carol", "hkt-dave"]


def test_nothing_answered_250_is_lost_while_programs_are_killed(mta):
    accepted = {}
    accepted_lock = threading.Lock()
    next_number = iter(range(MESSAGES))
    number_lock = threading.Lock()
    stop = threading.Event()
    kills = []
    errors = []

    def sender():
        client = None
        while True:
            with number_lock:
                number = next(next_number, None)
            if number is None:
                break
            user = USERS[number % len(USERS)]
            message = (f"Subject: fault test {number}\r\nX-Test-Id: ft-{number}\r\n\r\n"
                       f"message {number}\r\n")
            for _ in range(200):
                try:
                    if client is None:
                        client = smtplib.SMTP("127.0.0.1", mta.port, local_hostname="load.example.org", timeout=30)
                    code, reply = client.ehlo_or_helo_if_needed() or (250, b"")
                    client.mail("load@example.org")
                    code, reply = client.rcpt(f"{user}@example.test")
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, reply)
                    code, reply = client.data(message)
                    if code == 250:
                        with accepted_lock:
                            accepted[number] = user
                        break
                    client.rset()
                except (smtplib.SMTPException, OSError) as error:
                    errors.append(repr(error))
                    try:
                        client.close()
                    except Exception:
                        pass
                    client = None
                    time.sleep(0.05)
        if client is not None:
            try:
                client.quit()
            except Exception:
                pass

    def killer():
        rng = random.Random(1234)
        while not stop.is_set():
            time.sleep(rng.uniform(0.05, 0.4))
            program = rng.choice(["cleanup", "qmgr", "local", "smtpd"])
            pids = mta.pids().get(program, [])
            if pids:
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(program)
                except ProcessLookupError:
                    pass

    started = time.time()
    killing = threading.Thread(target=killer)
    killing.start()
    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    killing.join()
    sent_in = time.time() - started

    assert len(accepted) == MESSAGES, f"only {len(accepted)} of {MESSAGES} accepted; errors: {errors[:5]}"
    mta.wait_queue_empty(timeout=180)
    counts = {}
    for user in USERS:
        path = os.path.join(mta.mail, user)
        data = open(path, "rb").read() if os.path.exists(path) else b""
        for match in re.finditer(rb"^X-Test-Id: ft-(\d+)$", data, re.M):
            number = int(match.group(1))
            counts[number] = counts.get(number, 0) + 1
            assert accepted.get(number, user) == user
    missing = sorted(set(accepted) - set(counts))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    print(f"\nfault test: {MESSAGES} messages in {sent_in:.1f} s, {len(kills)} kills "
          f"({', '.join(f'{p}={kills.count(p)}' for p in sorted(set(kills)))}), "
          f"{len(errors)} client retries, {duplicates} duplicate deliveries")
    assert not missing, f"{len(missing)} accepted messages never delivered: {missing[:20]}"
    assert len(kills) >= 10
    assert mta.queue_files("deferred") == [] and mta.queue_files("corrupt") == []
