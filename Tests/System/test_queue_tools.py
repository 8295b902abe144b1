"""mailq, sendmail -bs, the sendmail command's failures (nothing lost), and
hikyaku queue."""
import json
import mailbox
import os
import pwd
import re
import select
import shutil
import subprocess
import time

import pytest

from conftest import BIN, HOSTNAME, free_port
from smtpclient import RawSMTP


def as_user(user, command, stdin=None, env=None):
    entry = pwd.getpwnam(user)
    environment = {"PATH": "/usr/bin:/bin", "HOME": entry.pw_dir}
    environment.update(env or {})
    return subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"] + command,
                          input=stdin, capture_output=True, env=environment, timeout=60)


def hikyaku(mta, *args):
    return subprocess.run([os.path.join(BIN, "hikyaku"), *args, "-c", mta.config], capture_output=True, text=True, timeout=120)


CLOSED_PORT = free_port()
REFUSED = f"connect to 127.0.0.1[127.0.0.1]:{CLOSED_PORT}: Connection refused"


def deferring(make_mta, extra=""):
    """An MTA that sends every .example domain to a port nobody listens
    on, so mail for them waits in deferred/."""
    mta = make_mta(start=False)
    table = os.path.join(mta.etc, "mailertable")
    with open(table, "w") as f:
        f.write(f".example esmtp:[127.0.0.1]:{CLOSED_PORT}\n")
    mta.write_config(f"mailertable_map = {table}\n{extra}")
    mta.start()
    return mta


@pytest.fixture
def mta(make_mta):
    return deferring(make_mta)


def defer_one(mta, recipient="x@elsewhere.example", subject="waiting"):
    with RawSMTP(mta.port) as s:
        s.ehlo()
        s.command("MAIL FROM:<jun@example.org>")
        assert s.command(f"RCPT TO:<{recipient}>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354")
        reply = s.command(f"Subject: {subject}\r\n\r\nbody\r\n.")
    queue_id = reply.rsplit(" ", 1)[1]
    deadline = time.time() + 20
    while queue_id not in mta.queue_files("deferred") and time.time() < deadline:
        time.sleep(0.05)
    assert queue_id in mta.queue_files("deferred")
    return queue_id


def test_mailq_for_an_ordinary_user(mta):
    sendmail = os.path.join(BIN, "sendmail")
    env = {"HIKYAKU_CONFIG": mta.config}
    empty = as_user("hkt-bob", [sendmail, "-bp"], env=env)
    assert empty.returncode == 0 and empty.stdout == b"Mail queue is empty\n", empty.stderr
    queue_id = defer_one(mta)
    mailq = os.path.join(mta.root, "mailq")
    os.symlink(sendmail, mailq)
    out = as_user("hkt-bob", [mailq], env=env)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    lines = text.splitlines()
    assert lines[0].startswith("-Queue ID-") and "--Size-- ----Arrival Time---- -Sender/Recipient-------" in lines[0]
    assert re.match(rf"^{queue_id} +\d+ \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d  jun@example\.org$", lines[1]), lines[1]
    assert lines[2] == f"({REFUSED})"
    assert lines[3].strip() == "x@elsewhere.example"
    assert lines[-1] == "-- 1 Kbytes in 1 Request."


def test_sendmail_bs_through_swaks(mta):
    sendmail = os.path.join(BIN, "sendmail")
    pipe = f"env HIKYAKU_CONFIG={mta.config} {sendmail} -bs"
    ok = as_user("hkt-bob", ["swaks", "--pipe", pipe, "--from", "hkt-bob@example.test", "--to", "hkt-alice@example.test",
                             "--helo", "localhost", "--body", "over -bs"])
    assert ok.returncode == 0, ok.stdout.decode() + ok.stderr.decode()
    assert b"<-  250 2.0.0 Ok: queued" in ok.stdout
    data = mta.wait_mbox("hkt-alice", 1)
    assert b"over -bs" in data and f"Received: by {HOSTNAME} (hikyaku, from userid {pwd.getpwnam('hkt-bob').pw_uid})".encode() in data
    refused = as_user("hkt-bob", ["swaks", "--pipe", pipe, "--from", "hkt-bob@example.test", "--to", "x@elsewhere.example",
                                  "--helo", "localhost"])
    assert b"<** 550 5.7.1 <x@elsewhere.example>... Relaying denied" in refused.stdout, refused.stdout.decode()


def test_failures_keep_the_message(mta, tmp_path):
    sendmail = os.path.join(BIN, "sendmail")
    env = {"HIKYAKU_CONFIG": mta.config}
    dead = os.path.join(pwd.getpwnam("hkt-dave").pw_dir, "dead.letter")
    if os.path.exists(dead):
        os.unlink(dead)
    # Header injection through -f.
    out = as_user("hkt-dave", [sendmail, "-f", "a@b\nBcc: victim@example.org", "hkt-alice"], b"Subject: one\n\ninjected\n", env=env)
    assert out.returncode == 64 and b"illegal line break in the -f argument" in out.stderr
    # No recipients, and -t without recipient headers.
    out = as_user("hkt-dave", [sendmail], b"Subject: two\n\nnobody\n", env=env)
    assert out.returncode == 64 and b"Recipient names must be specified" in out.stderr
    out = as_user("hkt-dave", [sendmail, "-t"], b"Subject: three\n\nno headers\n", env=env)
    assert out.returncode == 64 and b"no recipient addresses found" in out.stderr
    # The queue cannot be written.
    broken = os.path.join(mta.root, "broken.conf")
    with open(broken, "w") as f:
        f.write(open(mta.config).read().replace(mta.spool, "/nonexistent/spool"))
    out = as_user("hkt-dave", [sendmail, "hkt-alice"], b"Subject: four\n\nunqueued\nFrom the start of a line\nlast",
                  env={"HIKYAKU_CONFIG": str(broken)})
    assert out.returncode == 75, out.stderr
    assert f"the message is saved in {dead}".encode() in out.stderr
    saved = open(dead).read()
    for text in ("injected", "nobody", "no headers", "unqueued"):
        assert text in saved
    assert saved.startswith("From hkt-dave  ")
    # dead.letter is an mbox: one entry per message, a body "From " quoted.
    entries = [m.get_payload() for m in mailbox.mbox(dead)]
    assert [e.strip() for e in entries] == ["injected", "nobody", "no headers",
                                            "unqueued\n>From the start of a line\nlast"], entries
    assert saved.endswith("\nlast\n\n")


def test_queue_list_show_hold_release_delete(mta):
    first = defer_one(mta, subject="first")
    second = defer_one(mta, recipient="y@other.example", subject="second")
    listed = [json.loads(line) for line in hikyaku(mta, "queue", "list", "--json").stdout.splitlines()]
    assert {e["queue_id"] for e in listed} == {first, second}
    entry = next(e for e in listed if e["queue_id"] == first)
    assert entry["queue_name"] == "deferred" and entry["sender"] == "jun@example.org"
    assert entry["recipients"] == [{"address": "x@elsewhere.example",
                                    "delay_reason": REFUSED}]
    only = hikyaku(mta, "queue", "list", "--json", "--domain", "other.example").stdout.splitlines()
    assert [json.loads(l)["queue_id"] for l in only] == [second]
    assert hikyaku(mta, "queue", "list", "--json", "--older-than", "1h").stdout == ""
    assert len(hikyaku(mta, "queue", "list", "--json", "--older-than", "0s").stdout.splitlines()) == 2
    # A filter it cannot understand is refused, not ignored.
    for bad, said in (("--older-than=2 hours", "--older-than 2 hours: expected an age"),
                      ("--older-than=-1h", "--older-than -1h: expected an age"),
                      ("--state=deferd", "--state deferd: expected one of incoming, active, deferred, hold")):
        refused = hikyaku(mta, "queue", "list", bad)
        assert refused.returncode == 64 and said in refused.stderr and refused.stdout == "", refused
    show = hikyaku(mta, "queue", "show", first).stdout
    assert f"queue id: {first}\nstate: deferred\n" in show and "recipient: <x@elsewhere.example> deferred (" in show
    assert "Subject: first" in show
    assert hikyaku(mta, "queue", "hold", first).returncode == 0
    assert mta.queue_files("hold") == [first]
    assert "!" in hikyaku(mta, "queue", "list").stdout.split(first)[1][:1]
    summary = hikyaku(mta, "queue", "summary").stdout
    assert re.search(r"other\.example +1 +1", summary), summary
    assert hikyaku(mta, "queue", "release", first).returncode == 0
    deadline = time.time() + 20
    while first not in mta.queue_files("deferred") and time.time() < deadline:
        time.sleep(0.05)
    assert first in mta.queue_files("deferred")
    result = hikyaku(mta, "queue", "delete", "ALL")
    assert result.returncode == 0 and "2 messages deleted" in result.stdout
    assert mta.queue_files("deferred") == [] and os.listdir(os.path.join(mta.spool, "defer")) == []
    assert hikyaku(mta, "queue", "show", first).returncode != 0


def test_requeue_after_a_mailertable_change_takes_the_new_route(make_mta):
    mta = deferring(make_mta)
    table = os.path.join(mta.etc, "mailertable")
    queue_id = defer_one(mta, recipient="someone@partner.example", subject="rerouted")
    with open(table, "w") as f:
        f.write("partner.example local:hkt-carol\n")
    time.sleep(1.1)  # aliasd looks at its files at most once a second
    result = hikyaku(mta, "queue", "requeue", queue_id)
    assert result.returncode == 0, result.stdout + result.stderr
    data = mta.wait_mbox("hkt-carol", 1)
    assert b"Subject: rerouted" in data
    mta.wait_queue_empty()
    assert mta.queue_files("deferred") == []


def test_flush_and_the_queue_while_the_master_is_stopped(mta):
    queue_id = defer_one(mta)
    mta.stop()
    listed = hikyaku(mta, "queue", "list")
    assert listed.returncode == 0 and queue_id in listed.stdout
    flushed = hikyaku(mta, "queue", "flush")
    assert "not running" in flushed.stdout
    assert hikyaku(mta, "queue", "hold", "ALL").returncode == 0
    assert mta.queue_files("hold") == [queue_id]


def maildrop_file(recipients, content, sender=None):
    """A maildrop file as the sendmail command makes it (docs/INTERNALS.md 7.7)."""
    def attribute(key, value):
        return key.to_bytes(2, "big") + len(value).to_bytes(4, "big") + value
    body = bytes([1]) + (0x0502).to_bytes(2, "big")
    if sender is not None:
        body += attribute(2, sender.encode())
    for r in recipients:
        body += attribute(3, r.encode())
    body += attribute(27, b"\0")
    return b"HKD\x01" + len(body).to_bytes(4, "big") + body + content


def fresh_dead_letter(user):
    dead = os.path.join(pwd.getpwnam(user).pw_dir, "dead.letter")
    if os.path.exists(dead):
        os.unlink(dead)
    return dead


def test_too_big_or_too_many_hops_is_refused_up_front(make_mta):
    mta = make_mta(config_extra="message_size_limit = 2000")
    sendmail = os.path.join(BIN, "sendmail")
    env = {"HIKYAKU_CONFIG": mta.config}
    dead = fresh_dead_letter("hkt-dave")
    big = b"Subject: big\n\n" + b"x" * 2100 + b"\n"
    out = as_user("hkt-dave", [sendmail, "-i", "hkt-alice"], big, env=env)
    assert out.returncode == 65, out.stderr
    assert out.stderr.decode() == ("sendmail: message file too big: 2115 bytes, more than message_size_limit (2000 bytes)\n"
                                   f"sendmail: the message is saved in {dead}\n")
    hops = b"Received: x\n" * 100 + b"Subject: loop\n\nround and round\n"
    out = as_user("hkt-dave", [sendmail, "-i", "hkt-alice"], hops, env=env)
    assert out.returncode == 65 and b"sendmail: too many hops: 100 Received: header fields" in out.stderr, out.stderr
    # 99 is still fine: pickup's own makes 100.
    ok = as_user("hkt-dave", [sendmail, "-i", "hkt-alice"], hops[len(b"Received: x\n"):], env=env)
    assert ok.returncode == 0, ok.stderr
    assert b"round and round" in mta.wait_mbox("hkt-alice", 1)
    assert [m.get_payload() for m in mailbox.mbox(dead)] == ["x" * 2100 + "\n", "round and round\n"]
    # The helper does not take the caller's word for it.
    helper = os.path.join(BIN, "hikyaku-drop")
    out = as_user("hkt-dave", [helper, "-c", mta.config], maildrop_file(["hkt-alice"], big))
    assert out.returncode == 65 and out.stderr == b"hikyaku-drop: message file too big: 2115 bytes, more than message_size_limit (2000 bytes)\n"
    out = as_user("hkt-dave", [helper, "-c", mta.config], maildrop_file(["hkt-alice"], hops))
    assert out.returncode == 65 and out.stderr.startswith(b"hikyaku-drop: too many hops: 100 Received:"), out.stderr
    # Input beyond the limit plus the largest envelope is not even read whole.
    out = as_user("hkt-dave", [helper, "-c", mta.config], maildrop_file(["hkt-alice"], b"y" * (2000 + (1 << 20) + 100000)))
    assert out.returncode == 65
    assert out.stderr == b"hikyaku-drop: message file too big: the input is larger than message_size_limit (2000 bytes) and the envelope\n"
    assert os.listdir(os.path.join(mta.spool, "maildrop")) == []


def test_a_configuration_the_helper_may_not_trust_is_refused_or_used_without_its_group(mta):
    sendmail = os.path.join(BIN, "sendmail")
    dead = fresh_dead_letter("hkt-alice")
    same = open(mta.config).read()
    # Someone else's configuration: refused, and said so; nothing "default".
    bobs = os.path.join(mta.root, "bob.conf")
    with open(bobs, "w") as f:
        f.write(same)
    shutil.chown(bobs, "hkt-bob")
    out = as_user("hkt-alice", [sendmail, "-i", "hkt-bob"], b"Subject: a\n\nvia bob's\n", env={"HIKYAKU_CONFIG": bobs})
    assert out.returncode == 78, out.stderr
    assert (f"sendmail: cannot queue the message: hikyaku-drop: {bobs}: configuration refused: it belongs to neither "
            "root nor the caller").encode() in out.stderr
    assert b"using the default" not in out.stderr and f"saved in {dead}".encode() in out.stderr
    # root's, but others may write it: refused too.
    loose = os.path.join(mta.root, "loose.conf")
    with open(loose, "w") as f:
        f.write(same)
    os.chmod(loose, 0o666)
    out = as_user("hkt-alice", [sendmail, "-i", "hkt-bob"], b"Subject: b\n\nloose\n", env={"HIKYAKU_CONFIG": loose})
    assert out.returncode == 78 and b"configuration refused: its group or others may write it" in out.stderr, out.stderr
    # The caller's own: used, but only after the helper gave up its group,
    # so this system's maildrop/ (1730, group hikyaku-drop) stays shut.
    alices = os.path.join(mta.root, "alice.conf")
    with open(alices, "w") as f:
        f.write(same)
    shutil.chown(alices, "hkt-alice")
    out = as_user("hkt-alice", [sendmail, "-i", "hkt-bob"], b"Subject: c\n\nown\n", env={"HIKYAKU_CONFIG": alices})
    assert out.returncode == 75, out.stderr
    assert f"hikyaku-drop: cannot write to {mta.spool}/maildrop: open {mta.spool}/maildrop/.".encode() in out.stderr
    assert b"Permission denied" in out.stderr
    assert [m["Subject"] for m in mailbox.mbox(dead)] == ["a", "b", "c"]
    # root's own, writable by root only: used with the group, as before.
    out = as_user("hkt-alice", [sendmail, "-i", "hkt-bob"], b"Subject: d\n\nroot's\n", env={"HIKYAKU_CONFIG": mta.config})
    assert out.returncode == 0, out.stderr
    assert b"Subject: d" in mta.wait_mbox("hkt-bob", 1)


def test_a_uid_without_a_passwd_entry_must_name_a_sender(mta):
    sendmail = os.path.join(BIN, "sendmail")
    env = {"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config}
    nobody_known = ["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups", "--"]
    out = subprocess.run(nobody_known + [sendmail, "-i", "hkt-carol"], input=b"Subject: who\n\n?\n", env=env,
                         capture_output=True, timeout=60)
    assert out.returncode == 71, out.stderr
    assert out.stderr.startswith(b"sendmail: no login name found for user ID 54321; give a sender address with -f\n")
    out = subprocess.run(nobody_known + [sendmail, "-i", "-f", "batch@example.org", "hkt-carol"],
                         input=b"Subject: batch\n\nfrom a container\n", env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = mta.wait_mbox("hkt-carol", 1)
    assert b"Return-Path: <batch@example.org>" in data and b"from userid 54321" in data
    assert f"X-Authentication-Warning: {HOSTNAME}: #54321 set sender to batch@example.org using -f".encode() in data


def bs_session(mta, user, commands, timeout=60):
    """A whole `sendmail -bs` session: every command written at once, the replies read to the end."""
    sendmail = os.path.join(BIN, "sendmail")
    stdin = "".join(c if c.endswith("\n") else c + "\r\n" for c in commands).encode() if isinstance(commands, list) else commands
    out = as_user(user, [sendmail, "-bs"], stdin, env={"HIKYAKU_CONFIG": mta.config}) if user != "root" else \
        subprocess.run([sendmail, "-bs"], input=stdin, capture_output=True, timeout=timeout,
                       env={"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config})
    # One line per reply: the last line of each multi-line reply.
    return "\n".join(l for l in out.stdout.decode().splitlines() if not re.match(r"^\d{3}-", l)), out


def test_sendmail_bs_decides_like_smtpd(make_mta):
    mta = make_mta(start=False)
    with open(os.path.join(mta.etc, "virtusertable"), "w") as f:
        f.write("@virt.example hkt-carol\n")
    with open(os.path.join(mta.etc, "access"), "w") as f:
        f.write("From:spammer@example.org REJECT\n")
    mta.write_config(f"virtuser_domains = virt.example\nvirtusertable_map = {mta.etc}/virtusertable\n"
                     f"access_map = {mta.etc}/access\nsmtpd_forbid_bare_newline = normalize\n")
    mta.start()
    replies, out = bs_session(mta, "hkt-bob", [
        "EHLO localhost", "MAIL FROM:<someone@else.example>",
        "RCPT TO:<anyone@virt.example>", "RCPT TO:<nosuch@example.test>", "RCPT TO:<x@elsewhere.example>",
        "RCPT TO:<hkt-alice@example.test>", "RCPT TO:<HKT-alice@EXAMPLE.test>", "DATA",
        "Subject: bs\nbare line feeds are normalized\r\n.", "MAIL FROM:<spammer@example.org>",
        "RCPT TO:<hkt-alice@example.test>", "QUIT"])
    lines = replies.splitlines()
    assert out.returncode == 0, replies + out.stderr.decode()
    assert "250 2.1.5 Ok" == lines[3], lines                          # a virtuser domain
    assert "550 5.1.1 <nosuch@example.test>... User unknown" == lines[4], lines
    assert "550 5.7.1 <x@elsewhere.example>... Relaying denied" == lines[5], lines
    assert lines[8].startswith("354") and lines[9] == "250 2.0.0 Ok: queued", lines
    assert "550 5.7.1 <hkt-alice@example.test>... Access denied" == lines[11], lines   # delay_checks: at RCPT
    data = mta.wait_mbox("hkt-carol", 1)
    assert b"bare line feeds are normalized" in data
    assert f"X-Authentication-Warning: {HOSTNAME}: hkt-bob owned process doing -bs".encode() in data
    alice = mta.wait_mbox("hkt-alice", 1)
    assert len(re.findall(rb"^From ", alice, re.M)) == 1       # the same recipient twice: one copy
    # root may relay, as before; the bare LF is refused under the default.
    replies, _ = bs_session(mta, "root", ["HELO localhost", "MAIL FROM:<root@example.test>", "RCPT TO:<x@elsewhere.example>", "QUIT"])
    assert "250 2.1.5 Ok" in replies.splitlines()[3], replies
    mta.stop()
    mta.write_config("")
    mta.start()
    replies, _ = bs_session(mta, "hkt-bob", ["HELO localhost", "MAIL FROM:<hkt-bob@example.test>",
                                             "RCPT TO:<hkt-alice@example.test>", "DATA", "Subject: x\nbare\r\n."])
    assert "550 5.5.2 Error: bare <LF> received" in replies, replies


def test_sendmail_bs_times_out_like_smtpd(make_mta):
    mta = make_mta(config_extra="smtpd_timeout = 2s")
    entry = pwd.getpwnam("hkt-bob")
    started = time.time()
    process = subprocess.Popen(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
                                os.path.join(BIN, "sendmail"), "-bs"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env={"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config})
    output = b""
    try:
        process.stdin.write(b"EHLO localhost\r\n")
        process.stdin.flush()
        # Read until -bs gives up and closes its output, for 10 s at most.
        while time.time() - started < 10:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                output += chunk
        assert process.wait(5) == 0
    finally:
        process.kill()
    assert time.time() - started < 10, output
    assert output.decode().splitlines()[-1] == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded", output
