"""Every program on a Debian host that sends mail runs sendmail with its
own habits. Each caller's exact command line, delivering to a local
mailbox, byte for byte."""
import os
import pwd
import re
import subprocess
import tempfile

import pytest

from conftest import BIN, HOSTNAME

ASCTIME = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}"
RFCDATE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}( \([A-Za-z]+\))?"
MAILX = "/opt/hikyaku-test/bsd-mailx/usr/bin/bsd-mailx"


def sendmail(mta, argv, stdin, user=None, program="sendmail"):
    env = {"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config}
    command = [os.path.join(BIN, "sendmail")] + argv
    if program != "sendmail":
        link = os.path.join(mta.root, program)
        if not os.path.exists(link):
            os.symlink(os.path.join(BIN, "sendmail"), link)
        command[0] = link
    if user:
        entry = pwd.getpwnam(user)
        command = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"] + command
        env["HOME"] = entry.pw_dir
    return subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=60)


def entry_pattern(sender, delivered_to, uid, headers, added, body, warning=None):
    """The exact mbox entry: only dates and the queue ID may vary."""
    esc = lambda s: re.escape(s)
    pattern = esc(f"From {sender}  ") + ASCTIME + r"\n"
    pattern += esc(f"Return-Path: <{sender}>\nDelivered-To: {delivered_to}\n")
    pattern += esc(f"Received: by {HOSTNAME} (hikyaku, from userid {uid})\n\tid ") + r"\w+; " + RFCDATE + r"\n"
    if warning:
        pattern += esc(warning + "\n")
    pattern += esc(headers)
    for name in added:
        if name == "Message-ID":
            pattern += r"Message-ID: <\d{14}\.\w+@" + esc(HOSTNAME) + r">\n"
        elif name == "Date":
            pattern += r"Date: " + RFCDATE + r"\n"
        else:
            pattern += esc(name) + r"\n"
    # The mbox entry ends with the message's last newline and one empty line.
    pattern += esc("\n" + body + "\n\n")
    return pattern


def check(mta, result, box, pattern):
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    data = mta.wait_mbox(box, 1).decode()
    assert re.fullmatch(pattern, data), data


def uid(user):
    return pwd.getpwnam(user).pw_uid


ALICE = f"hkt-alice@{HOSTNAME}"


def test_debian_cron(mta):
    message = b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@vm> run-parts\n\nout of cron\n"
    result = sendmail(mta, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], message)
    check(mta, result, "root", entry_pattern(f"root@{HOSTNAME}", f"root@{HOSTNAME}", 0,
                                             "From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@vm> run-parts\n",
                                             ["Message-ID", "Date"], "out of cron"))


def test_cronie(mta):
    message = b"From: \"(Cron Daemon)\" <root>\nTo: hkt-alice\nSubject: Cron <hkt-alice@vm> job\n\n.\nstill going\n"
    result = sendmail(mta, ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"], message)
    check(mta, result, "hkt-alice", entry_pattern(
        f"root@{HOSTNAME}", ALICE, 0, "From: \"(Cron Daemon)\" <root>\nTo: hkt-alice\nSubject: Cron <hkt-alice@vm> job\n",
        ["Message-ID", "Date"], ".\nstill going"))


def test_anacron_without_headers_gets_from_with_the_full_name(mta):
    result = sendmail(mta, ["-FAnacron", "-odi", "hkt-alice"], b"Subject: Anacron job 'cron.daily'\n\nran\n", user="hkt-bob")
    bob = f"hkt-bob@{HOSTNAME}"
    check(mta, result, "hkt-alice", entry_pattern(bob, ALICE, uid("hkt-bob"), "Subject: Anacron job 'cron.daily'\n",
                                                   ["Message-ID", "Date", f"From: Anacron <{bob}>"], "ran"))


def test_mutt(mta):
    message = (b"Date: Sun, 29 Nov 2026 10:00:00 +0000\nFrom: A <a@b.example>\nTo: hkt-alice@example.test\n"
               b"Subject: from mutt\nMessage-ID: <m1@b.example>\nMIME-Version: 1.0\n\n8 bit \xc3\xa9\n")
    argv = ["-oem", "-oi", "-B8BITMIME", "-f", "a@b.example", "-N", "failure,delay", "-R", "hdrs", "--", "hkt-alice@example.test"]
    result = sendmail(mta, argv, message, user="hkt-carol")
    pattern = entry_pattern("a@b.example", "hkt-alice@example.test", uid("hkt-carol"),
                            message.decode().split("\n\n")[0] + "\n", [], "8 bit é",
                            warning=f"X-Authentication-Warning: {HOSTNAME}: hkt-carol set sender to a@b.example using -f")
    check(mta, result, "hkt-alice", pattern)


def test_s_nail(mta):
    message = b"Subject: s-nail\nTo: hkt-alice\n\nhello\n"
    result = sendmail(mta, ["-i", "-r", "hkt-carol@example.test", "--", "hkt-alice"], message, user="hkt-carol")
    # carol's own address in a local domain: no X-Authentication-Warning.
    check(mta, result, "hkt-alice", entry_pattern(
        "hkt-carol@example.test", ALICE, uid("hkt-carol"), "Subject: s-nail\nTo: hkt-alice\n",
        ["Message-ID", "Date", "From: hkt-carol@example.test"], "hello"))


def test_mailutils_mail(mta):
    message = b"To: hkt-alice@example.test\nCc: hkt-bob@example.test\nSubject: mailutils\n\nbody\n"
    result = sendmail(mta, ["-oi", "-f", f"hkt-carol@{HOSTNAME}", "-t"], message, user="hkt-carol")
    carol = f"hkt-carol@{HOSTNAME}"
    headers = "To: hkt-alice@example.test\nCc: hkt-bob@example.test\nSubject: mailutils\n"
    added = ["Message-ID", "Date", f"From: {carol}"]
    check(mta, result, "hkt-alice", entry_pattern(carol, "hkt-alice@example.test", uid("hkt-carol"), headers, added, "body"))
    assert re.fullmatch(entry_pattern(carol, "hkt-bob@example.test", uid("hkt-carol"), headers, added, "body"),
                        mta.wait_mbox("hkt-bob", 1).decode())


def test_php_mail_with_bcc(mta):
    message = b"To: hkt-alice@example.test\nBcc: hkt-bob@example.test,\n hkt-dave@example.test\nSubject: php\nFrom: web@example.test\n\nfrom php\n"
    result = sendmail(mta, ["-t", "-i"], message, user="hkt-carol")
    carol = f"hkt-carol@{HOSTNAME}"
    headers = "To: hkt-alice@example.test\nSubject: php\nFrom: web@example.test\n"
    for box, to in (("hkt-alice", "hkt-alice@example.test"), ("hkt-bob", "hkt-bob@example.test"), ("hkt-dave", "hkt-dave@example.test")):
        assert result.returncode == 0
        data = mta.wait_mbox(box, 1).decode()
        # Bcc recipients get the message; nobody sees the Bcc field.
        assert re.fullmatch(entry_pattern(carol, to, uid("hkt-carol"), headers, ["Message-ID", "Date"], "from php"), data), data


@pytest.mark.parametrize("argv,user,box", [
    (["-oi", "-t"], None, "hkt-alice"),                                   # unattended-upgrades
    (["-t", "-fraid@host.example"], None, "hkt-alice"),                   # mdadm (root)
    (["-f", "fail2ban@host.example", "hkt-alice"], None, "hkt-alice"),    # fail2ban
    (["-ti"], "hkt-bob", "hkt-alice"),                                    # busybox-style
    (["-i", "hkt-alice"], "hkt-bob", "hkt-alice"),                        # at
])
def test_other_callers(mta, argv, user, box):
    message = b"To: hkt-alice\nSubject: caller\n\nline one\n.\nline three\n"
    result = sendmail(mta, argv, message, user=user)
    assert result.returncode == 0, result.stderr.decode()
    sender = next((a[2:] if a.startswith("-f") and len(a) > 2 else None for a in argv if a.startswith("-f") and len(a) > 2), None)
    if "-f" in argv:
        sender = argv[argv.index("-f") + 1]
    sender = sender or f"{user or 'root'}@{HOSTNAME}"
    ignore_dots = "-i" in argv or "-oi" in argv or "-ti" in argv
    body = "line one\n.\nline three" if ignore_dots else "line one"
    pattern = entry_pattern(sender, ALICE, uid(user) if user else 0, "To: hkt-alice\nSubject: caller\n",
                            ["Message-ID", "Date", f"From: {sender}"], body)
    check(mta, result, box, pattern)


def test_a_lone_dot_ends_the_message_without_dash_i(mta):
    result = sendmail(mta, ["hkt-alice"], b"Subject: dot\n\nbefore\n.\nafter\n", user="hkt-bob")
    check(mta, result, "hkt-alice", entry_pattern(f"hkt-bob@{HOSTNAME}", ALICE, uid("hkt-bob"), "Subject: dot\n",
                                                   ["Message-ID", "Date", f"From: hkt-bob@{HOSTNAME}"], "before"))


def test_crlf_input_and_no_final_newline(mta):
    result = sendmail(mta, ["-i", "hkt-alice"], b"Subject: crlf\r\n\r\nline\r\nlast", user="hkt-bob")
    check(mta, result, "hkt-alice", entry_pattern(f"hkt-bob@{HOSTNAME}", ALICE, uid("hkt-bob"), "Subject: crlf\n",
                                                   ["Message-ID", "Date", f"From: hkt-bob@{HOSTNAME}"], "line\nlast"))


@pytest.mark.parametrize("debug", [False, True])
def test_options_without_effect_are_logged_once_at_debug_level(make_mta, debug):
    mta = make_mta("debug_programs = pickup\n" if debug else "")
    argv = ["-oem", "-odb", "-U", "-m", "-X", "/tmp/sendmail-trace", "-v", "-Lcron", "-h", "17", "-i", "hkt-alice"]
    result = sendmail(mta, argv, b"Subject: flags\n\nbody\n", user="hkt-bob")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    mta.wait_mbox("hkt-alice", 1)
    mta.wait_log(r"pickup\[\d+\]: \w+: uid=\d+ from=<hkt-bob@")
    lines = re.findall(r"pickup\[\d+\]: (\w+): sendmail options accepted without effect: (.*)$", mta.log(), re.M)
    if debug:
        assert [options for _, options in lines] == ["-oem -odb -U -m -X/tmp/sendmail-trace -v -Lcron -h17"]
    else:
        assert lines == []
    assert not os.path.exists("/tmp/sendmail-trace")


def test_bsd_mailx(mta):
    if not os.path.exists(MAILX):
        pytest.fail(f"{MAILX} is missing: .ci/run unpacks Debian's bsd-mailx there")
    rc = os.path.join(mta.root, "mailrc")
    link = os.path.join(mta.root, "sendmail-for-mailx")
    with open(link, "w") as f:
        f.write(f"#!/bin/sh\nHIKYAKU_CONFIG={mta.config} exec {BIN}/sendmail \"$@\"\n")
    os.chmod(link, 0o755)
    with open(rc, "w") as f:
        f.write(f"set sendmail={link}\n")
    entry = pwd.getpwnam("hkt-bob")
    result = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
                             MAILX, "-s", "from mailx", "hkt-alice"], input=b"written with mailx\n",
                            env={"PATH": "/usr/bin:/bin", "MAILRC": rc, "HOME": entry.pw_dir, "USER": "hkt-bob"},
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    data = mta.wait_mbox("hkt-alice", 1).decode()
    # What mailx itself writes (in the C locale), then what hikyaku adds.
    headers = ("To: hkt-alice\nSubject: from mailx\nMIME-Version: 1.0\n"
               "Content-Type: text/plain; charset=\"ANSI_X3.4-1968\"\nContent-Transfer-Encoding: 8bit\n")
    assert re.fullmatch(entry_pattern(f"hkt-bob@{HOSTNAME}", ALICE, entry.pw_uid, headers,
                                      ["Message-ID", "Date", f"From: hkt-bob@{HOSTNAME}"], "written with mailx"), data), data


def test_git_send_email(mta, tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="Jun", GIT_AUTHOR_EMAIL="jun@example.org",
               GIT_COMMITTER_NAME="Jun", GIT_COMMITTER_EMAIL="jun@example.org", HIKYAKU_CONFIG=mta.config)
    (repo / "file").write_text("hello\n")
    subprocess.run(["git", "-C", str(repo), "add", "file"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "Add a file"], check=True, env=env)
    patch = subprocess.run(["git", "-C", str(repo), "format-patch", "-1", "-o", str(tmp_path)], check=True,
                           capture_output=True, text=True, env=env).stdout.strip()
    wrapper = tmp_path / "sendmail"
    wrapper.write_text(f"#!/bin/sh\nexec {BIN}/sendmail \"$@\"\n")
    wrapper.chmod(0o755)
    result = subprocess.run(["git", "-C", str(repo), "send-email", "--confirm=never", "--no-chain-reply-to",
                             f"--smtp-server={wrapper}", "--envelope-sender=jun@example.org",
                             "--to=hkt-alice@example.test", "--to=hkt-bob@example.test", patch],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for box in ("hkt-alice", "hkt-bob"):
        data = mta.wait_mbox(box, 1).decode()
        assert "Return-Path: <jun@example.org>\n" in data
        assert "Subject: [PATCH] Add a file\n" in data and "+hello\n" in data
        assert data.count("\nFrom ") == 0 and data.endswith("\n\n")


def test_root_writes_into_maildrop_itself_and_users_go_through_the_helper(mta):
    # The same programs without hikyaku-drop: root's sendmail does the
    # helper's work in its own process (one program start less for cron's
    # mail), a user's still needs the setgid helper.
    programs = os.path.join(mta.root, "programs-without-drop")
    os.makedirs(programs)
    for name in os.listdir(BIN):
        if name != "hikyaku-drop":
            os.symlink(os.path.join(BIN, name), os.path.join(programs, name))
    config = os.path.join(mta.etc, "without-drop.conf")
    with open(config, "w") as f:
        f.write(open(mta.config).read().replace(f"daemon_directory = {BIN}", f"daemon_directory = {programs}"))
    os.chmod(config, 0o644)
    env = {"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": config}
    result = subprocess.run([os.path.join(BIN, "sendmail"), "-i", "hkt-alice"], input=b"Subject: from root\n\nbody\n",
                            capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    mta.wait_mbox("hkt-alice", 1)
    assert b"Subject: from root" in mta.mbox("hkt-alice")
    assert re.search(r"pickup\[\d+\]: \w+: uid=0 from=<root@", mta.log()), mta.log()

    entry = pwd.getpwnam("hkt-bob")
    dead = os.path.join(entry.pw_dir, "dead.letter")
    if os.path.exists(dead):
        os.unlink(dead)
    result = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
                             os.path.join(BIN, "sendmail"), "-i", "hkt-alice"], input=b"Subject: from bob\n\nbody\n",
                            capture_output=True, env=dict(env, HOME=entry.pw_dir), timeout=60)
    try:
        assert result.returncode == 75, result
        assert f"{programs}/hikyaku-drop is missing".encode() in result.stderr, result.stderr
    finally:
        if os.path.exists(dead):
            os.unlink(dead)
