"""Mail sent over SMTP to local users lands in their mailboxes, byte for
byte, and the mailbox readers that admins use read it back."""
import mailbox
import os
import pwd
import re
import socket
import subprocess
import time

from conftest import HOSTNAME

MESSAGE = (
    "Subject: greetings\n"
    "Date: Sun, 29 Nov 2026 10:00:00 +0000\n"
    "Message-ID: <m1@example.org>\n"
    "From: Sender <sender@example.org>\n"
    "\n"
    "From the start of a line, quoted.\n"
    ".a leading dot survives\n"
    "  From not at the start: untouched\n"
    "last line\n"
)

ASCTIME = rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}"
RFCDATE = rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}( \([A-Za-z]+\))?"


def expected_entry(sender, recipient, delivered_to, queue_id, body, helo="client.example.org"):
    """The exact mbox entry, as a regex that allows only the two timestamps
    to vary."""
    quoted = re.sub(r"^From ", ">From ", body, flags=re.M)
    parts = [
        re.escape(f"From {sender}  ".encode()) + ASCTIME + rb"\n",
        re.escape(f"Return-Path: <{sender}>\nDelivered-To: {delivered_to}\n".encode()),
        re.escape(f"Received: from {helo} (localhost [127.0.0.1])\n\tby {HOSTNAME} (hikyaku) with ESMTP id {queue_id}\n\tfor <{recipient}>; ".encode()),
        RFCDATE + rb"\n",
        re.escape(quoted.encode()),
        rb"\n",
    ]
    return b"".join(parts)


def swaks(mta, *args, data=None):
    command = ["swaks", "--server", f"127.0.0.1:{mta.port}", "--helo", "client.example.org",
               "--timeout", "30"] + list(args)
    if data is not None:
        command += ["--data", "-"]
    result = subprocess.run(command, input=data, capture_output=True, text=True, timeout=60)
    return result


def queue_id_from(text):
    match = re.search(r"250 2\.0\.0 Ok: queued as (\w+)", text)
    assert match, text
    return match.group(1)


def test_swaks_to_a_local_user_gives_the_exact_mbox_entry(mta):
    result = swaks(mta, "--from", "sender@example.org", "--to", "hkt-alice@example.test", data=MESSAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    queue_id = queue_id_from(result.stdout)
    data = mta.wait_mbox("hkt-alice", 1)
    # swaks ends the data with an extra CRLF, which becomes an empty last line.
    pattern = expected_entry("sender@example.org", "hkt-alice@example.test", "hkt-alice@example.test",
                             queue_id, MESSAGE + "\n")
    assert re.fullmatch(pattern, data), data.decode()
    st = os.stat(os.path.join(mta.mail, "hkt-alice"))
    assert st.st_uid == pwd.getpwnam("hkt-alice").pw_uid
    assert st.st_gid == __import__("grp").getgrnam("mail").gr_gid
    assert st.st_mode & 0o777 == 0o600
    mta.wait_log(rf"{queue_id}: to=<hkt-alice@example.test>, relay=local, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(delivered to mailbox\)")
    mta.wait_log(rf"{queue_id}: removed")


def send_with(client, mta, recipients, pipeline=False):
    """Sends MESSAGE with swaks or smtplib; returns the queue ID and the
    content as the server received it."""
    if client == "swaks":
        args = ["--from", "sender@example.org"]
        for r in recipients:
            args += ["--to", r]
        if pipeline:
            args.append("--pipeline")
        result = swaks(mta, *args, data=MESSAGE)
        assert result.returncode == 0, result.stdout + result.stderr
        # swaks ends the data with an extra CRLF: an empty last line.
        return queue_id_from(result.stdout), MESSAGE + "\n"
    with mta.smtp() as smtp:
        smtp.ehlo("client.example.org")
        smtp.mail("sender@example.org")
        for r in recipients:
            assert smtp.rcpt(r)[0] == 250
        code, reply = smtp.data(MESSAGE.replace("\n", "\r\n"))
        assert code == 250
    return queue_id_from("250 " + reply.decode()), MESSAGE


import pytest


@pytest.mark.parametrize("client", ["swaks", "smtplib"])
@pytest.mark.parametrize("pipeline", [False, True])
def test_exact_mbox_entries_for_a_user_and_for_an_alias(mta, client, pipeline):
    if client == "smtplib" and pipeline:
        pytest.skip("smtplib has no PIPELINING; the raw one-write test covers Python")
    queue_id, content = send_with(client, mta, ["hkt-alice@example.test"], pipeline)
    alice = mta.wait_mbox("hkt-alice", 1)
    pattern = expected_entry("sender@example.org", "hkt-alice@example.test", "hkt-alice@example.test", queue_id, content)
    assert re.fullmatch(pattern, alice), alice.decode()
    queue_id, content = send_with(client, mta, ["team@example.test"], pipeline)
    for user in ("hkt-alice", "hkt-bob"):
        data = mta.wait_mbox(user, 2 if user == "hkt-alice" else 1)
        last = b"From " + data.rsplit(b"\nFrom ", 1)[-1] if data.count(b"\nFrom sender") else data
        pattern = expected_entry("sender@example.org", "team@example.test", f"{user}@{HOSTNAME}", queue_id, content)
        assert re.fullmatch(pattern, last), last.decode()


@pytest.mark.parametrize("client", ["swaks", "smtplib"])
def test_exact_maildir_files(make_mta, client):
    mta = make_mta("home_mailbox = Maildir/")
    queue_id, content = send_with(client, mta, ["team@example.test"])
    for user in ("hkt-alice", "hkt-bob"):
        mta.wait_log(rf"{queue_id}: to=<{user}@{re.escape(HOSTNAME)}>, orig_to=<team@example.test>, relay=local.*status=sent")
        new = os.path.join(pwd.getpwnam(user).pw_dir, "Maildir", "new")
        files = os.listdir(new)
        assert len(files) == 1
        with open(os.path.join(new, files[0]), "rb") as f:
            data = f.read()
        pattern = (re.escape(f"Return-Path: <sender@example.org>\nDelivered-To: {user}@{HOSTNAME}\n".encode())
                   + re.escape(f"Received: from client.example.org (localhost [127.0.0.1])\n\tby {HOSTNAME} (hikyaku) with ESMTP id {queue_id}\n\tfor <team@example.test>; ".encode())
                   + RFCDATE + rb"\n" + re.escape(content.encode()))
        assert re.fullmatch(pattern, data), data.decode()


def test_smtplib_to_an_alias_reaches_both_users(mta):
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["team@example.test"], MESSAGE.replace("\n", "\r\n"))
    for user in ("hkt-alice", "hkt-bob"):
        data = mta.wait_mbox(user, 1)
        assert f"Delivered-To: {user}@{HOSTNAME}\n".encode() in data
        assert data.endswith(b"last line\n\n")
        assert b"\n>From the start of a line, quoted.\n" in data
        assert b"\n.a leading dot survives\n" in data
    mta.wait_log(rf"to=<hkt-alice@{HOSTNAME}>, orig_to=<team@example.test>, relay=local")
    mta.wait_log(rf"to=<hkt-bob@{HOSTNAME}>, orig_to=<team@example.test>, relay=local")


def test_a_recipient_given_twice_is_delivered_once(mta):
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["hkt-bob@example.test", "HKT-bob@EXAMPLE.test", "hkt-alice@example.test"],
                        MESSAGE.replace("\n", "\r\n"))
    mta.wait_mbox("hkt-alice", 1)
    mta.wait_queue_empty()
    assert len(re.findall(rb"^From sender@example\.org ", mta.mbox("hkt-bob"), re.M)) == 1
    mta.wait_log(r"from=<sender@example\.org>, size=\d+, nrcpt=2 \(queue active\)")


def test_nested_alias_with_mixed_case_is_expanded_once_per_user(mta):
    # Crew: team, hkt-carol; team: hkt-alice, hkt-bob. "Crew" is looked up
    # case-insensitively, and hkt-alice named twice gets one copy.
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["CREW@example.test", "hkt-alice@example.test"],
                        MESSAGE.replace("\n", "\r\n"))
    for user in ("hkt-alice", "hkt-bob", "hkt-carol"):
        mta.wait_mbox(user, 1)
    mta.wait_queue_empty()
    alice = mta.mbox("hkt-alice")
    # Two envelope recipients reach alice: directly and through the alias.
    assert len(re.findall(rb"^From ", alice, re.M)) == 2


def read_replies(sock, count):
    data = b""
    while len(re.findall(rb"^\d{3} ", data, re.M)) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_a_whole_transaction_in_one_pipelined_write(mta):
    body = MESSAGE.replace("\n", "\r\n").replace("\r\n.a", "\r\n..a")
    script = ("EHLO client.example.org\r\n"
              "MAIL FROM:<sender@example.org>\r\n"
              "RCPT TO:<hkt-alice@example.test>\r\n"
              "RCPT TO:<team@example.test>\r\n"
              "DATA\r\n" + body + ".\r\n"
              "QUIT\r\n")
    with socket.create_connection(("127.0.0.1", mta.port)) as s:
        s.settimeout(30)
        assert read_replies(s, 1).startswith("220 ")
        s.sendall(script.encode())
        replies = read_replies(s, 7)
    codes = re.findall(r"^(\d{3}) ", replies, re.M)
    assert codes == ["250", "250", "250", "250", "354", "250", "221"], replies
    queue_id = queue_id_from(replies)
    alice = mta.wait_mbox("hkt-alice", 2)
    bob = mta.wait_mbox("hkt-bob", 1)
    assert alice.count(f"id {queue_id}".encode()) == 2
    entry = expected_entry("sender@example.org", "", f"hkt-bob@{HOSTNAME}", queue_id, MESSAGE)
    # Two recipients: no "for <...>" clause in Received.
    entry = entry.replace(re.escape(b"\n\tfor <>; "), re.escape(b";\n\t"))
    assert re.fullmatch(entry, bob), bob.decode()


def test_swaks_pipelining_option(mta):
    result = swaks(mta, "--pipeline", "--from", "sender@example.org", "--to", "hkt-bob@example.test", data=MESSAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    mta.wait_mbox("hkt-bob", 1)


def test_maildir_delivery_writes_one_file_in_new(make_mta):
    mta = make_mta("home_mailbox = Maildir/")
    result = swaks(mta, "--from", "sender@example.org", "--to", "hkt-carol@example.test", data=MESSAGE)
    queue_id = queue_id_from(result.stdout)
    home = pwd.getpwnam("hkt-carol").pw_dir
    new = os.path.join(home, "Maildir", "new")
    mta.wait_log(rf"{queue_id}: to=<hkt-carol@example.test>, relay=local.*status=sent \(delivered to maildir\)")
    files = os.listdir(new)
    assert len(files) == 1 and os.listdir(os.path.join(home, "Maildir", "tmp")) == []
    path = os.path.join(new, files[0])
    with open(path, "rb") as f:
        data = f.read()
    assert re.fullmatch(rb"\d+\.M\d+P\d+Q\d+\.mail,S=\d+", files[0].encode()), files[0]
    pattern = (re.escape(b"Return-Path: <sender@example.org>\nDelivered-To: hkt-carol@example.test\n")
               + re.escape(f"Received: from client.example.org (localhost [127.0.0.1])\n\tby {HOSTNAME} (hikyaku) with ESMTP id {queue_id}\n\tfor <hkt-carol@example.test>; ".encode())
               + RFCDATE + rb"\n" + re.escape((MESSAGE + "\n").encode()))
    assert re.fullmatch(pattern, data), data.decode()
    st = os.stat(path)
    assert st.st_uid == pwd.getpwnam("hkt-carol").pw_uid and st.st_mode & 0o777 == 0o600
    assert int(files[0].split("S=")[1]) == len(data)
    box = mailbox.Maildir(os.path.join(home, "Maildir"), create=False)
    messages = list(box)
    assert len(messages) == 1 and messages[0]["Subject"] == "greetings"


def test_python_mailbox_reads_the_mbox(mta):
    with mta.smtp() as client:
        for n in range(3):
            client.sendmail("sender@example.org", ["hkt-dave@example.test"],
                            MESSAGE.replace("greetings", f"message {n}").replace("\n", "\r\n"))
    mta.wait_mbox("hkt-dave", 3)
    box = mailbox.mbox(os.path.join(mta.mail, "hkt-dave"), create=False)
    messages = list(box)
    # Deliveries run in parallel: the order in the mailbox is not fixed.
    assert sorted(m["Subject"] for m in messages) == ["message 0", "message 1", "message 2"]
    for m in messages:
        assert m.get_from().startswith("sender@example.org  ")
        assert m["Return-Path"] == "<sender@example.org>"
        assert m.get_payload().endswith("last line\n")
        assert ">From the start of a line" in m.get_payload()


def dovecot_fetch(root, user, location):
    """Reads every message of a user's INBOX with doveadm, through a minimal
    Dovecot configuration of our own."""
    run = os.path.join(root, "dovecot")
    os.makedirs(run, exist_ok=True)
    conf = os.path.join(run, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""base_dir = {run}/base
state_dir = {run}/state
log_path = {run}/dovecot.log
ssl = no
protocols =
mail_location = {location}
mail_privileged_group = mail
first_valid_uid = 1000
userdb {{
  driver = passwd
}}
passdb {{
  driver = static
  args = nopassword=y
}}
""")
    # doveadm asks the running Dovecot's auth service for the user.
    subprocess.run(["dovecot", "-c", conf], check=True, timeout=60)
    try:
        result = subprocess.run(["doveadm", "-c", conf, "fetch", "-u", user, "text", "mailbox", "INBOX", "all"],
                                capture_output=True, timeout=60)
    finally:
        subprocess.run(["doveadm", "-c", conf, "stop"], timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_dovecot_reads_the_mbox(mta):
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["hkt-dave@example.test"], MESSAGE.replace("\n", "\r\n"))
        client.sendmail("other@example.org", ["hkt-dave@example.test"],
                        MESSAGE.replace("greetings", "second").replace("\n", "\r\n"))
    mta.wait_mbox("hkt-dave", 2)
    mta.wait_queue_empty()
    index = os.path.join(mta.root, "dovecot-index", "%u")
    user_dir = os.path.join(mta.root, "dovecot-home")
    os.makedirs(user_dir, exist_ok=True)
    os.chmod(mta.root, 0o755)
    entry = pwd.getpwnam("hkt-dave")
    os.chown(user_dir, entry.pw_uid, entry.pw_gid)
    out = dovecot_fetch(mta.root, "hkt-dave",
                        f"mbox:{user_dir}:INBOX={mta.mail}/%u:INDEX=MEMORY")
    texts = out.split(b"text:\n")[1:]
    assert len(texts) == 2, out
    # Two deliveries to one mailbox may run at once: either order is right.
    texts.sort(key=lambda text: b"Subject: second" in text)
    assert b"Subject: greetings" in texts[0] and b"Subject: second" in texts[1]
    assert b"Return-Path: <sender@example.org>" in texts[0]
    assert b"From the start of a line, quoted." in texts[0]


def test_dovecot_reads_the_maildir(make_mta):
    mta = make_mta("home_mailbox = Maildir/")
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["hkt-carol@example.test"], MESSAGE.replace("\n", "\r\n"))
    mta.wait_log(r"status=sent \(delivered to maildir\)")
    out = dovecot_fetch(mta.root, "hkt-carol", "maildir:~/Maildir:INDEX=MEMORY")
    texts = out.split(b"text:\n")[1:]
    assert len(texts) == 1, out
    assert b"Subject: greetings" in texts[0]
    assert b"Delivered-To: hkt-carol@example.test" in texts[0]


def test_missing_message_id_and_date_are_added(mta):
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["hkt-bob@example.test"], "Subject: bare\r\n\r\nno id, no date\r\n")
    data = mta.wait_mbox("hkt-bob", 1)
    headers = data.split(b"\n\n", 1)[0] + b"\n"
    match = re.search(rb"\nMessage-ID: <(\d{14})\.(\w+)@" + re.escape(HOSTNAME.encode()) + rb">\n", headers)
    assert match, headers
    assert re.search(rb"\nDate: " + RFCDATE + rb"\n", headers), headers
    # Added at the end of the header section, after the client's own headers.
    assert headers.index(b"Subject: bare") < headers.index(b"Message-ID:") < headers.index(b"\nDate:")
    assert b"\nFrom:" not in headers  # mail from the network gets no From: added
    mta.wait_log(rf"{match.group(2).decode()}: message-id=<{match.group(1).decode()}\.{match.group(2).decode()}@")


def test_a_maildir_missing_new_and_cur_is_completed(make_mta):
    # local creates the Maildir only when its tmp/ is missing; a Maildir an
    # MUA left with tmp/ alone still gets its new/ and cur/.
    mta = make_mta("home_mailbox = Maildir/")
    entry = pwd.getpwnam("hkt-carol")
    maildir = os.path.join(entry.pw_dir, "Maildir")
    os.makedirs(os.path.join(maildir, "tmp"))
    for path in (maildir, os.path.join(maildir, "tmp")):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["hkt-carol@example.test"], "Subject: half\r\n\r\nbody\r\n")
    mta.wait_log(r"to=<hkt-carol@example.test>, relay=local.*status=sent \(delivered to maildir\)")
    assert len(os.listdir(os.path.join(maildir, "new"))) == 1
    assert os.path.isdir(os.path.join(maildir, "cur")) and os.listdir(os.path.join(maildir, "tmp")) == []


def test_a_user_added_after_a_bounce_gets_mail_at_once(make_mta):
    # local remembers users it found for a few seconds, never one it did
    # not find: the admin who adds the missing user sees the next message
    # delivered. The alias takes the mail past smtpd's recipient check.
    user = "hkt-late"
    subprocess.run(["userdel", "--remove", user], stderr=subprocess.DEVNULL)
    mta = make_mta("home_mailbox = Maildir/", aliases=f"postmaster: root\nlate-list: {user}, hkt-alice\n")
    try:
        with mta.smtp() as client:
            client.sendmail("sender@example.org", ["late-list@example.test"], "Subject: before\r\n\r\nbody\r\n")
        mta.wait_log(rf"to=<{user}>, orig_to=<late-list@example.test>.*status=bounced \(User unknown\)")
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
        with mta.smtp() as client:
            client.sendmail("sender@example.org", ["late-list@example.test"], "Subject: after\r\n\r\nbody\r\n")
        mta.wait_log(rf"to=<{user}@.*status=sent \(delivered to maildir\)")
        new = os.path.join(pwd.getpwnam(user).pw_dir, "Maildir", "new")
        assert len(os.listdir(new)) == 1
    finally:
        mta.stop()
        subprocess.run(["userdel", "--remove", user], stderr=subprocess.DEVNULL)
