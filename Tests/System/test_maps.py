"""Compiled maps: Berkeley DB files shared with other tools, used while
newer than their source, and replaced under load without a single failed
decision."""
import os
import re
import subprocess
import threading
import time

from conftest import BIN
from smtpclient import RawSMTP


def makemap(*args, stdin="", cwd=None):
    return subprocess.run([os.path.join(BIN, "makemap"), *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def test_db5_3_tools_read_ours_and_we_read_theirs(make_mta):
    mta = make_mta(start=False)
    access = os.path.join(mta.etc, "access")
    # Ours, read by db5.3_dump.
    result = makemap("hash", access, stdin="Connect:127.0.3.4\tREJECT\n127.0.2\tRELAY\n")
    assert result.returncode == 0, result.stderr
    dump = subprocess.run(["db5.3_dump", "-p", access + ".db"], capture_output=True, text=True)
    assert dump.returncode == 0
    assert " connect:127.0.3.4\n REJECT\n" in dump.stdout and " 127.0.2\n RELAY\n" in dump.stdout
    # makemap -u gives back what went in (keys folded to lower case).
    assert sorted(makemap("-u", "hash", access).stdout.splitlines()) == ["127.0.2\tRELAY", "connect:127.0.3.4\tREJECT"]
    # btree too.
    assert makemap("btree", access + "-b", stdin="a 1\nb 2\n").returncode == 0
    assert "type=btree" in subprocess.run(["db5.3_dump", "-p", access + "-b.db"], capture_output=True, text=True).stdout
    # Theirs: db5.3_load writes the access.db our daemons then use (no text source at all).
    os.unlink(access + ".db")
    load = subprocess.run(["db5.3_load", "-T", "-t", "hash", access + ".db"], input="127.0.2\nRELAY\n",
                          capture_output=True, text=True)
    assert load.returncode == 0, load.stderr
    mta.write_config(f"access_map = {access}")
    mta.start()
    with RawSMTP(mta.port, source="127.0.2.5") as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        assert s.command("RCPT TO:<x@elsewhere.example>") == "250 2.1.5 Ok"


def test_a_compiled_map_is_used_only_while_it_is_newer_than_its_source(make_mta):
    mta = make_mta(start=False)
    access = os.path.join(mta.etc, "access")
    makemap("hash", access, stdin="127.0.2 RELAY\n")
    with open(access, "w") as f:
        f.write("127.0.9 RELAY\n")
    os.utime(access, (time.time() + 5, time.time() + 5))
    mta.write_config(f"access_map = {access}")
    mta.start()
    mta.wait_log(r"warning: .*access\.db is older than .*access; using the text file")
    for source, expected in (("127.0.2.5", "550 5.7.1"), ("127.0.9.5", "250 2.1.5")):
        with RawSMTP(mta.port, source=source) as s:
            s.ehlo()
            s.command("MAIL FROM:<a@example.org>")
            assert s.command("RCPT TO:<x@elsewhere.example>").startswith(expected), source


def test_rebuilding_maps_while_mail_streams_in(make_mta):
    """500 messages or more while access.db and aliases.db are rebuilt over and over:
    each decision is the old map's or the new one's, and none fails."""
    mta = make_mta(start=False)
    access = os.path.join(mta.etc, "access")
    aliases = os.path.join(mta.etc, "aliases")
    makemap("hash", access, stdin="127.0.2 RELAY\n")
    with open(aliases, "w") as f:
        f.write("list: hkt-alice\n")
    mta.write_config(f"access_map = {access}\nsmtpd_hard_error_limit = 10000")
    env = dict(os.environ, HIKYAKU_CONFIG=mta.config)
    newaliases = os.path.join(mta.root, "newaliases")
    os.symlink(os.path.join(BIN, "sendmail"), newaliases)
    assert subprocess.run([newaliases], env=env, capture_output=True).returncode == 0
    mta.start()
    stop = threading.Event()
    rebuilds = [0]

    def rebuild():
        flip = False
        while not stop.is_set():
            flip = not flip
            makemap("hash", access, stdin="127.0.2 RELAY\n" if flip else "127.0.2 OK\n")
            with open(aliases, "w") as f:
                f.write("list: hkt-alice\n" if flip else "list: hkt-bob\n")
            subprocess.run([newaliases], env=env, capture_output=True)
            rebuilds[0] += 1
            time.sleep(0.02)

    builder = threading.Thread(target=rebuild)
    builder.start()
    replies = []
    try:
        with RawSMTP(mta.port, source="127.0.2.5") as s:
            s.ehlo()
            # At least 500 messages, and on until both maps' answers were
            # seen (aliasd looks for changed files once a second).
            n = 0
            while n < 500 or (len(set(replies)) < 2 and n < 5000):
                n += 1
                assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
                replies.append(s.command("RCPT TO:<x@elsewhere.example>"))
                assert s.command("RCPT TO:<list@example.test>") == "250 2.1.5 Ok"
                assert s.command("DATA").startswith("354")
                assert s.command(f"Subject: {n}\r\n\r\nx\r\n.").startswith("250 2.0.0 Ok: queued as")
    finally:
        stop.set()
        builder.join()
    old_or_new = {"250 2.1.5 Ok", "550 5.7.1 <x@elsewhere.example>... Relaying denied. IP name lookup failed [127.0.2.5]"}
    assert set(replies) <= old_or_new, set(replies) - old_or_new
    assert len(set(replies)) == 2 and rebuilds[0] >= 10, (set(replies), rebuilds[0])
    mta.wait_queue_empty(timeout=120)
    delivered = sum(mta.mbox(u).count(b"\nSubject: ") for u in ("hkt-alice", "hkt-bob")
                    if os.path.exists(os.path.join(mta.mail, u)))
    assert delivered == n, (delivered, n)
    # The relayed copies wait in deferred/ (no remote delivery yet); no local
    # delivery failed.
    assert not re.search(r"relay=local, .*status=(bounced|deferred)", mta.log()), mta.log()[-3000:]


def test_domaintable_rewrites_envelope_and_headers(make_mta):
    mta = make_mta(start=False)
    table = os.path.join(mta.etc, "domaintable")
    with open(table, "w") as f:
        f.write("old.example.test example.test\n")
    mta.write_config(f"domaintable_map = {table}")
    mta.start()
    time.sleep(0.5)  # cleanup asks aliasd for the table as it starts
    with mta.smtp() as client:
        client.sendmail("jun@old.example.test", ["hkt-alice@old.example.test"],
                        "From: Jun <jun@old.example.test>\r\nTo: hkt-alice@old.example.test, x@sub.old.example.test\r\n"
                        "Subject: moved\r\n\r\nstill jun@old.example.test in the body\r\n")
    data = mta.wait_mbox("hkt-alice", 1)
    assert b"Return-Path: <jun@example.test>\n" in data
    assert b"\nFrom: Jun <jun@example.test>\n" in data
    assert b"\nTo: hkt-alice@example.test, x@sub.old.example.test\n" in data
    assert b"still jun@old.example.test in the body" in data


def test_newaliases_refuses_a_broken_file_and_names_the_line(make_mta):
    mta = make_mta(start=False)
    aliases = os.path.join(mta.etc, "aliases")
    with open(aliases, "w") as f:
        f.write("good: root\nno colon here\nteam: hkt-alice,\n  hkt-bob\n")
    env = dict(os.environ, HIKYAKU_CONFIG=mta.config)
    newaliases = os.path.join(mta.root, "newaliases")
    os.symlink(os.path.join(BIN, "sendmail"), newaliases)
    result = subprocess.run([newaliases], env=env, capture_output=True, text=True)
    assert result.returncode == 65
    assert f"{aliases}: line 2: missing colon after the alias name" in result.stderr
    assert not os.path.exists(aliases + ".db")
    with open(aliases, "w") as f:
        f.write("good: root\nteam: hkt-alice,\n  hkt-bob\n")
    result = subprocess.run([os.path.join(BIN, "sendmail"), "-bi"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # "root" is 4 bytes, "hkt-alice, hkt-bob" 18: 22 in all.
    assert result.stdout == f"{aliases}: 2 aliases, longest 18 bytes, 22 bytes total\n"
    dump = subprocess.run(["db5.3_dump", "-p", aliases + ".db"], capture_output=True, text=True).stdout
    assert " team\\00\n hkt-alice, hkt-bob\\00\n" in dump and " @\\00\n @\\00\n" in dump


def test_aliases_db_keeps_every_alias_and_names_one_it_cannot_read(make_mta):
    mta = make_mta(start=False)
    aliases = os.path.join(mta.etc, "aliases")
    with open(aliases, "w") as f:
        f.write('quoted: "|/bin/echo \\"hi there\\"", hkt-bob\nteam: hkt-alice,\n\thkt-carol\n')
    env = dict(os.environ, HIKYAKU_CONFIG=mta.config)
    text = subprocess.run([os.path.join(BIN, "sendmail"), "-bv", "quoted", "team"], env=env, capture_output=True, text=True)
    assert subprocess.run([os.path.join(BIN, "sendmail"), "-bi"], env=env, capture_output=True).returncode == 0
    # sendmail's newaliases stores the right-hand side as written.
    dump = subprocess.run(["db5.3_dump", "-p", aliases + ".db"], capture_output=True, text=True).stdout
    assert ' quoted\\00\n "|/bin/echo \\\\"hi there\\\\"", hkt-bob\\00\n' in dump, dump
    database = subprocess.run([os.path.join(BIN, "sendmail"), "-bv", "quoted", "team"], env=env, capture_output=True, text=True)
    assert database.stdout == text.stdout and database.stderr == "", database
    assert '"|/bin/echo \\"hi there\\""... deliverable: mailer prog' in database.stdout
    assert "hkt-bob... deliverable: mailer local, user hkt-bob" in database.stdout
    # A value that does not parse (as older versions wrote for such a
    # target) is left out with a warning that names the alias.
    load = subprocess.run(["db5.3_load", aliases + ".db"], capture_output=True, text=True, input=(
        "VERSION=3\nformat=print\ntype=hash\nHEADER=END\n"
        ' broken\\00\n "a\\5c\\5c"b"\\00\nDATA=END\n'))
    assert load.returncode == 0, load.stderr
    os.utime(aliases + ".db")
    result = subprocess.run([os.path.join(BIN, "sendmail"), "-bv", "team"], env=env, capture_output=True, text=True)
    assert result.stdout == "hkt-alice... deliverable: mailer local, user hkt-alice\nhkt-carol... deliverable: mailer local, user hkt-carol\n"
    assert result.stderr == (f"warning: {aliases}.db: alias 'broken': its value in the database does not parse "
                             "(unbalanced quote); alias ignored\n"), result.stderr
    mta.start()
    mta.wait_log(rf"warning: {re.escape(aliases)}\.db: alias 'broken': its value in the database does not parse")
    with mta.smtp() as client:
        client.sendmail("a@example.org", ["team@example.test"], "Subject: from the db\r\n\r\nx\r\n")
    assert b"Subject: from the db" in mta.wait_mbox("hkt-carol", 1)


def test_makemap_reports_what_sendmail_reports(tmp_path):
    out = makemap("hash", str(tmp_path / "m"), stdin="a 1\nA 2\n  lead\nkeyonly\n")
    assert out.returncode == 65
    assert out.stderr == (f"makemap: {tmp_path}/m: line 2: key a: duplicate key\n"
                          f"makemap: {tmp_path}/m: line 3: syntax error (leading space)\n"
                          f"makemap: {tmp_path}/m: line 4: no RHS for LHS keyonly\n")
    assert makemap("-r", "hash", str(tmp_path / "r"), stdin="a 1\na 2\n").returncode == 0
    assert makemap("-u", "hash", str(tmp_path / "r")).stdout == "a\t2\n"
    assert makemap("-N", "hash", str(tmp_path / "n"), stdin="postmaster root\n").returncode == 0
    assert "postmaster\\00" in subprocess.run(["db5.3_dump", "-p", str(tmp_path / "n.db")], capture_output=True, text=True).stdout
    os.makedirs(tmp_path / "ro")
    os.chmod(tmp_path / "ro", 0o555)
    denied = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             os.path.join(BIN, "makemap"), "hash", str(tmp_path / "ro" / "m")],
                            input="a 1\n", capture_output=True, text=True)
    assert denied.returncode == 73, denied.stderr
    assert "makemap: error opening type hash map" in denied.stderr
    assert makemap("-l").stdout == "hash\nbtree\n"
    assert makemap("dbm", "x").returncode == 64
