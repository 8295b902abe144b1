"""The sendmail tutorial our users learned from (shared/reference/
sendmail-tutorial-ja.txt), its examples as written: the access file and its
makemap line, local-host-names, the aliases (a list, /dev/null, a procmail
pipe), newaliases, and the -bt session that ends in `mailer local, user jun`."""
import os
import pwd
import re
import shutil
import subprocess
import time

import pytest

from conftest import BIN
from smtpclient import RawSMTP

ACCESS = """# Check the /usr/share/doc/sendmail/README.cf file for a description
# of the format of this file. (search for access_db in that file)
# The /usr/share/doc/sendmail/README.cf is part of the sendmail-doc
# package.
#
# by default we allow relaying from localhost...
localhost.localdomain RELAY
localhost RELAY
127.0.0.1 RELAY

# 192.168.0.0から192.168.0.255までのマシンのみメール中継する
192.168.0 RELAY
"""

LOCAL_HOST_NAMES = """# local-host-names - include all aliases for your machine here.
example.jp
mail.example.jp

# 複数ドメインも指定できます。
example2009.jp
"""

ALIASES = """project: takagi, iida, support@example.jp

# /dev/nullに書き込み
project2: /dev/null

# パイプを通じて標準入力に書き込み
project3: "| /usr/local/bin/procmail"
"""

PROCMAIL = "/usr/local/bin/procmail"
MARKER = "# hikyaku test stand-in for procmail"
USERS = ["jun", "takagi", "iida", "support"]


@pytest.fixture
def tutorial(make_mta):
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
    mta = make_mta(start=False)
    etc = mta.etc
    with open(os.path.join(etc, "access"), "w") as f:
        f.write(ACCESS)
    with open(os.path.join(etc, "local-host-names"), "w") as f:
        f.write(LOCAL_HOST_NAMES)
    with open(os.path.join(etc, "aliases"), "w") as f:
        f.write(ALIASES)
    mta.write_config(f"myhostname = mail.example.jp\naccess_map = {etc}/access\n"
                     f"local_host_names_file = {etc}/local-host-names\nalias_file = {etc}/aliases\n")
    # The stand-in procmail writes what it gets where the test can read it.
    spool = os.path.join(mta.root, "procmail")
    os.makedirs(spool)
    os.chmod(spool, 0o1777)
    if os.path.exists(PROCMAIL) and MARKER not in open(PROCMAIL).read():
        pytest.skip(f"a real {PROCMAIL} is installed; not replacing it")
    os.makedirs(os.path.dirname(PROCMAIL), exist_ok=True)
    with open(PROCMAIL, "w") as f:
        f.write(f"#!/bin/sh\n{MARKER}\nout={spool}/$$\n{{ id -u; echo \"$SENDER\"; cat; }} > $out.tmp && mv $out.tmp $out\n")
    os.chmod(PROCMAIL, 0o755)
    yield mta
    os.unlink(PROCMAIL)


def run(mta, argv0, *args, stdin=None):
    """One of the sendmail programs, called by the name the tutorial uses."""
    link = os.path.join(mta.root, argv0)
    if not os.path.exists(link):
        os.symlink(os.path.join(BIN, "sendmail" if argv0 != "makemap" else "makemap"), link)
    return subprocess.run([link, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, HIKYAKU_CONFIG=mta.config))


def test_the_tutorial_as_written(tutorial):
    mta = tutorial
    # makemap hash /etc/mail/access.db < /etc/mail/access
    access = os.path.join(mta.etc, "access")
    result = run(mta, "makemap", "hash", access + ".db", stdin=open(access).read())
    assert result.returncode == 0, result.stderr
    assert subprocess.run(["db5.3_dump", "-p", access + ".db"], capture_output=True).returncode == 0
    # newaliases
    result = run(mta, "newaliases")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"{re.escape(mta.etc)}/aliases: 3 aliases, longest \d+ bytes, \d+ bytes total\n", result.stdout), result.stdout
    assert os.path.exists(os.path.join(mta.etc, "aliases.db"))
    # /usr/sbin/sendmail -bt -C /etc/mail/sendmail.cf, then /parse jun@example.jp
    result = run(mta, "sendmail", "-bt", "-C", "/etc/mail/sendmail.cf", stdin="/parse jun@example.jp\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\nEnter <ruleset> <address>\n> ")
    assert result.stdout.rstrip("> \n").splitlines()[-1] == "mailer local, user jun"

    mta.start()
    with mta.smtp() as client:
        client.sendmail("sender@example.org", ["project@example.jp"], "Subject: project\r\n\r\nto the project\r\n")
        client.sendmail("sender@example.org", ["project2@mail.example.jp"], "Subject: project2\r\n\r\ninto /dev/null\r\n")
        client.sendmail("sender@example.org", ["project3@example2009.jp"], "Subject: project3\r\n\r\nthrough procmail\r\n")
    for user in ("takagi", "iida", "support"):
        assert b"Subject: project\n" in mta.wait_mbox(user, 1)
    mta.wait_log(r"to=</dev/null>, orig_to=<project2@mail\.example\.jp>, relay=local, .*status=sent \(delivered to file: /dev/null\)")
    mta.wait_log(r"orig_to=<project3@example2009\.jp>, relay=local, .*status=sent \(delivered to command: /usr/local/bin/procmail\)")
    spool = os.path.join(mta.root, "procmail")
    outputs = [os.path.join(spool, f) for f in os.listdir(spool) if not f.endswith(".tmp")]
    assert len(outputs) == 1
    uid, sender, message = open(outputs[0]).read().split("\n", 2)
    # The aliases file belongs to root: the command runs as nobody, never root.
    assert int(uid) == pwd.getpwnam("nobody").pw_uid
    assert sender == "sender@example.org"
    assert "Subject: project3\n" in message and "through procmail" in message
    mta.wait_queue_empty()


def test_relaying_as_the_tutorials_access_file_says(tutorial):
    mta = tutorial
    access = os.path.join(mta.etc, "access")
    run(mta, "makemap", "hash", access + ".db", stdin=open(access).read())
    lan, other = "192.168.0.77", "192.168.1.77"
    for address in (lan, other):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True)
    try:
        mta.start()
        for source, expected in (("127.0.0.1", "250 2.1.5 Ok"), (lan, "250 2.1.5 Ok"),
                                 (other, "550 5.7.1 <friend@elsewhere.example>... Relaying denied")):
            with RawSMTP(mta.port, source=source) as s:
                s.ehlo()
                s.command("MAIL FROM:<jun@example.jp>")
                assert s.command("RCPT TO:<friend@elsewhere.example>").startswith(expected), source
                assert s.command("RCPT TO:<takagi@example.jp>") == "250 2.1.5 Ok"
    finally:
        for address in (lan, other):
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)
