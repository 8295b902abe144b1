"""The log is in Postfix's shapes, so Postfix's log summariser reads it:
pflogsumm --syslog-name=hikyaku over a test run's maillog reports the
messages received, delivered, deferred, bounced and rejected that the test
itself made happen."""
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import BIN, HOSTNAME, free_port

PFLOGSUMM = shutil.which("pflogsumm")

ALIASES = ("postmaster: root\n"
           "broken: \"|/bin/sh -c 'echo no such mailbox; exit 67'\"\n")


def grand_totals(report):
    totals = {}
    section = report.split("Grand Totals", 1)[1].split("Per-Hour", 1)[0]
    for count, what in re.findall(r"^\s*(\d+)\s+(received|delivered|forwarded|deferred|bounced|rejected)\b",
                                  section, re.M):
        totals[what] = int(count)
    return totals


@pytest.mark.skipif(PFLOGSUMM is None, reason="pflogsumm is not installed (Debian package pflogsumm)")
def test_pflogsumm_counts_what_happened(make_mta):
    mta = make_mta(f"smart_host = [127.0.0.1]:{free_port()}\n", aliases=ALIASES)
    with smtplib.SMTP("127.0.0.1", mta.port) as client:
        # Three to a local mailbox.
        for n in range(3):
            client.sendmail("sender@example.org", [f"hkt-alice@{HOSTNAME}"], f"Subject: local {n}\r\n\r\nx\r\n")
        # One for a host that does not answer: deferred.
        client.sendmail("sender@example.org", ["someone@remote.example"], "Subject: remote\r\n\r\nx\r\n")
        # One to a command that fails for good: bounced, and the report
        # goes to the (local) sender's mailbox.
        client.sendmail(f"hkt-carol@{HOSTNAME}", [f"broken@{HOSTNAME}"], "Subject: broken\r\n\r\nx\r\n")
        # One refused at RCPT: rejected, not received.
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("sender@example.org", [f"no-such-user-hk@{HOSTNAME}"], "Subject: refused\r\n\r\nx\r\n")
    # One through the sendmail command (pickup).
    subprocess.run([os.path.join(BIN, "sendmail"), "-i", f"hkt-bob@{HOSTNAME}"], check=True, timeout=30,
                   input=b"Subject: from the command\n\nx\n", env={"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config})
    mta.wait_mbox("hkt-alice", 3)
    mta.wait_mbox("hkt-bob", 1)
    mta.wait_mbox("hkt-carol", 1)
    mta.wait_log(r"to=<someone@remote\.example>, relay=.*status=deferred")
    mta.wait_log(r"to=<broken@.*status=bounced")
    run = subprocess.run([PFLOGSUMM, "--syslog-name=hikyaku", mta.maillog], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    totals = grand_totals(run.stdout)
    # Received: 3 + 1 + 1 over SMTP, 1 from pickup. Delivered: alice's
    # three, bob's one, and the bounce report to carol.
    assert totals == {"received": 6, "delivered": 5, "forwarded": 0, "deferred": 1, "bounced": 1,
                      "rejected": 1}, run.stdout
