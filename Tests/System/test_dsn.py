"""Delivery status notifications (RFC 3461 requests, RFC 3464 reports) end
to end: the SMTP dialogue, the queue, the reports that come back to the
sender's mailbox, read with Python's email package and with flufl.bounce
(Debian's python3-flufl.bounce, what Mailman uses to find bouncing
addresses)."""
import email
import email.policy
import mailbox
import os
import re
import subprocess
import time

from flufl.bounce import all_failures, scan_message

from conftest import BIN, HOSTNAME
from smtpclient import RawSMTP

RFCDATE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}( \([A-Za-z]+\))?"

ALIASES = ("postmaster: root\n"
           "ghost: no-such-user-hk\n"
           "quiet: no-such-user-hk2\n"
           "broken: \"|/bin/sh -c 'echo no such mailbox; exit 67'\"\n"
           "team: hkt-bob, hkt-carol\n"
           "away: someone@elsewhere.example\n")


def reports(mta, user, count):
    """The messages in USER's mbox once there are COUNT, parsed."""
    mta.wait_mbox(user, count)
    box = mailbox.mbox(os.path.join(mta.mail, user))
    try:
        return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.compat32) for key in box.keys()]
    finally:
        box.close()


def by_subject(messages, subject):
    found = [m for m in messages if m["Subject"] == subject]
    assert len(found) == 1, [m["Subject"] for m in messages]
    return found[0]


def parts(report):
    """The three parts of a multipart/report, and its delivery-status blocks."""
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["From"] == f"MAILER-DAEMON@{HOSTNAME} (Mail Delivery System)"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["Return-Path"] == "<>"
    text, status, original = report.get_payload()
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    return text.get_payload(), blocks[0], blocks[1:], original


def submit(s, sender, recipients, subject, mail_parameters=""):
    """One transaction; recipients are (address, parameters). The queue ID."""
    assert s.command(f"MAIL FROM:<{sender}>{mail_parameters}") == "250 2.1.0 Ok"
    for address, parameters in recipients:
        assert s.command(f"RCPT TO:<{address}>{parameters}") == "250 2.1.5 Ok", address
    assert s.command("DATA").startswith("354")
    reply = s.command(f"Subject: {subject}\r\nFrom: <{sender}>\r\n\r\nthe body of {subject}\r\n.")
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    return reply.rsplit(" ", 1)[1]


def test_smtpd_advertises_dsn_and_refuses_bad_parameters(mta):
    with RawSMTP(mta.port) as s:
        assert "\n250-DSN\n" in s.ehlo()
        assert s.command("MAIL FROM:<a@example.org> RET=BODY") == "501 5.5.4 Bad RET parameter syntax"
        assert s.command("MAIL FROM:<a@example.org> ENVID=" + "x" * 101) == "501 5.5.4 Bad ENVID parameter syntax"
        assert s.command("MAIL FROM:<a@example.org> ENVID=a+0Db") == "501 5.5.4 Bad ENVID parameter syntax"
        assert s.command("MAIL FROM:<a@example.org> RET=HDRS ENVID=ok") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-bob@example.test> NOTIFY=NEVER,FAILURE") == "501 5.5.4 Error: Bad NOTIFY parameter syntax"
        assert s.command("RCPT TO:<hkt-bob@example.test> NOTIFY=SOMETIMES") == "501 5.5.4 Error: Bad NOTIFY parameter syntax"
        assert s.command("RCPT TO:<hkt-bob@example.test> ORCPT=rfc822;bob+0D+0AX:+20y") == "501 5.5.4 Error: Bad ORCPT parameter syntax"
        assert s.command("RCPT TO:<hkt-bob@example.test> ORCPT=bob@example.test") == "501 5.5.4 Error: Bad ORCPT parameter syntax"
        assert s.command("RCPT TO:<hkt-bob@example.test> NOTIFY=FAILURE FOO=BAR") == "555 5.5.4 Unsupported option: FOO"
        assert s.command("RCPT TO:<hkt-bob@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@Example.test") == "250 2.1.5 Ok"
    with RawSMTP(mta.port) as s:
        s.command("HELO client.example.org")
        assert s.command("MAIL FROM:<a@example.org> RET=FULL") == "555 5.5.4 Unsupported option: RET"


def test_failure_and_success_reports_of_one_smtp_transaction(make_mta):
    """RET=HDRS, ENVID, ORCPT and each NOTIFY: one failure report naming
    exactly the failed recipients that asked for it, one success report."""
    mta = make_mta(aliases=ALIASES)
    with RawSMTP(mta.port) as s:
        s.ehlo()
        queue_id = submit(s, "hkt-alice@example.test", [
            ("ghost@example.test", " NOTIFY=FAILURE,DELAY ORCPT=rfc822;Ghost+2Btag@Example.test"),
            ("broken@example.test", ""),
            ("quiet@example.test", " NOTIFY=NEVER"),
            ("hkt-bob@example.test", " NOTIFY=SUCCESS ORCPT=rfc822;Bob@Example.test"),
            ("hkt-carol@example.test", ""),
        ], "dsn one", mail_parameters=" RET=HDRS ENVID=QQ+2B314159")
    mta.wait_log(rf"{queue_id}: sender non-delivery notification: \w+")
    mta.wait_log(rf"{queue_id}: sender delivery status notification: \w+")
    mta.wait_log(rf"{queue_id}: removed")
    messages = reports(mta, "hkt-alice", 2)
    assert len(messages) == 2, [m["Subject"] for m in messages]

    failure = by_subject(messages, "Undelivered Mail Returned to Sender")
    text, per_message, blocks, original = parts(failure)
    assert failure["To"] == "hkt-alice@example.test"
    assert "I'm sorry to have to inform you that your message could not" in text
    assert re.search(r"^<ghost@example\.test>: ", text, re.M)
    assert re.search(r"^<broken@example\.test>: .*no such mailbox", text, re.M)
    assert "quiet@" not in text and "hkt-carol" not in text
    assert per_message["Original-Envelope-Id"] == "QQ+314159"
    assert per_message["Reporting-MTA"] == f"dns; {HOSTNAME}"
    assert per_message["X-Hikyaku-Queue-ID"] == queue_id
    assert re.fullmatch(RFCDATE, per_message["Arrival-Date"])
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; ghost@example.test", "rfc822; broken@example.test"]
    ghost, broken = blocks
    assert ghost["Original-Recipient"] == "rfc822; Ghost+tag@Example.test"
    assert broken["Original-Recipient"] is None
    assert ghost["Action"] == broken["Action"] == "failed"
    assert ghost["Status"] == "5.1.1" and broken["Status"] == "5.3.0"
    assert ghost["Diagnostic-Code"].startswith("X-Hikyaku; ")
    assert re.fullmatch(r"X-Hikyaku; .*no such mailbox.*", " ".join(broken["Diagnostic-Code"].split()))
    assert ghost["Remote-MTA"] is None
    assert re.fullmatch(RFCDATE, ghost["Last-Attempt-Date"])
    # RET=HDRS: the header section only.
    assert original.get_content_type() == "text/rfc822-headers"
    assert original["Content-Description"] == "Undelivered Message Headers"
    returned = original.get_payload()
    assert "Subject: dsn one\n" in returned and "the body of" not in returned
    # What a mailing list manager finds: exactly the two, by their ORCPT
    # where one was given.
    assert scan_message(failure) == {b"Ghost+tag@Example.test", b"broken@example.test"}
    assert all_failures(failure) == (set(), {b"Ghost+tag@Example.test", b"broken@example.test"})

    success = by_subject(messages, "Successful Mail Delivery Report")
    text, per_message, blocks, original = parts(success)
    assert "Your message was successfully delivered to the destination(s)" in text
    assert per_message["Original-Envelope-Id"] == "QQ+314159"
    assert per_message["X-Hikyaku-Queue-ID"] == queue_id
    assert len(blocks) == 1
    bob = blocks[0]
    assert bob["Final-Recipient"] == "rfc822; hkt-bob@example.test"
    assert bob["Original-Recipient"] == "rfc822; Bob@Example.test"
    assert bob["Action"] == "delivered" and bob["Status"] == "2.0.0"
    assert bob["Diagnostic-Code"] == "X-Hikyaku; delivered to mailbox"
    assert original.get_content_type() == "text/rfc822-headers"
    assert scan_message(success) == set()
    # The mail itself arrived where it was delivered.
    assert b"Subject: dsn one" in mta.wait_mbox("hkt-bob", 1)
    assert b"Subject: dsn one" in mta.wait_mbox("hkt-carol", 1)


def test_sendmail_options_apply_to_every_recipient(mta):
    """sendmail -N, -R, -V: every recipient gets the NOTIFY; RET=FULL
    returns the whole message as message/rfc822."""
    env = {"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config}
    result = subprocess.run([os.path.join(BIN, "sendmail"), "-N", "failure", "-R", "full", "-V", "batch-7",
                             "-f", "hkt-dave@example.test", "nobody-here@example.test", "nobody-there@example.test",
                             "hkt-bob@example.test"],
                            input=b"Subject: via sendmail\n\nline one\n", capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    failure = by_subject(reports(mta, "hkt-dave", 1), "Undelivered Mail Returned to Sender")
    text, per_message, blocks, original = parts(failure)
    assert per_message["Original-Envelope-Id"] == "batch-7"
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; nobody-here@example.test", "rfc822; nobody-there@example.test"]
    assert all(b["Original-Recipient"] is None and b["Status"] == "5.1.1" for b in blocks)
    assert original.get_content_type() == "message/rfc822"
    assert original["Content-Description"] == "Undelivered Message"
    inner = original.get_payload()[0]
    assert inner["Subject"] == "via sendmail" and "line one" in inner.get_payload()
    assert scan_message(failure) == {b"nobody-here@example.test", b"nobody-there@example.test"}
    # NOTIFY=FAILURE: the delivered recipient gets no success report.
    assert b"Subject: via sendmail" in mta.wait_mbox("hkt-bob", 1)
    time.sleep(1)
    assert len(reports(mta, "hkt-dave", 1)) == 1


def test_bad_sendmail_dsn_options_are_dropped_with_a_warning(mta):
    env = {"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config}
    result = subprocess.run([os.path.join(BIN, "sendmail"), "-N", "never,success", "-R", "body", "-V", "a\rb",
                             "hkt-bob@example.test"],
                            input=b"Subject: odd options\n\nx\n", capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"Subject: odd options" in mta.wait_mbox("hkt-bob", 1)
    mta.wait_log(r"warning: \S+: ignoring bad -N value: never,success")
    mta.wait_log(r"warning: \S+: ignoring bad -R value: body")
    mta.wait_log(r"warning: \S+: ignoring bad -V value: a b")


def test_alias_expansion_reports_expanded_and_forwarded_copies_inherit(make_mta):
    """NOTIFY=SUCCESS on an alias gives one `expanded` report; a copy sent on
    to another domain keeps the ORCPT, ENVID and RET and NOTIFY without
    SUCCESS (RFC 3461 section 6.2.7)."""
    mta = make_mta(aliases=ALIASES)
    with RawSMTP(mta.port) as s:
        s.ehlo()
        queue_id = submit(s, "hkt-alice@example.test", [
            ("team@example.test", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;team+40example.test"),
            ("away@example.test", " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Away+40Example.test"),
        ], "expansion", mail_parameters=" RET=HDRS ENVID=exp-1")
    mta.wait_log(rf"{queue_id}: sender delivery status notification: \w+")
    assert b"Subject: expansion" in mta.wait_mbox("hkt-bob", 1)
    assert b"Subject: expansion" in mta.wait_mbox("hkt-carol", 1)
    success = by_subject(reports(mta, "hkt-alice", 1), "Successful Mail Delivery Report")
    _, per_message, blocks, _ = parts(success)
    assert per_message["Original-Envelope-Id"] == "exp-1"
    assert [(b["Final-Recipient"], b["Original-Recipient"], b["Action"]) for b in blocks] == [
        ("rfc822; team@example.test", "rfc822; team@example.test", "expanded"),
        ("rfc822; away@example.test", "rfc822; Away@Example.test", "expanded"),
    ]
    # The copy for someone@elsewhere.example waits in the queue (no remote
    # delivery here): it carries what its parent asked, minus SUCCESS.
    mta.wait_log(r"to=<someone@elsewhere\.example>, orig_to=<away@example\.test>, relay=local.*status=sent \(forwarded as (\w+)\)")
    forwarded = re.search(r"status=sent \(forwarded as (\w+)\)", mta.log()).group(1)
    deadline = time.time() + 20
    while forwarded not in mta.queue_files("deferred") and time.time() < deadline:
        time.sleep(0.05)
    show = subprocess.run([os.path.join(BIN, "hikyaku"), "queue", "show", "--envelope", forwarded, "-c", mta.config],
                          capture_output=True, text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    assert "dsn_envid: exp-1\n" in show.stdout and "dsn_ret: HDRS\n" in show.stdout
    assert "recipient: <someone@elsewhere.example> deferred (" in show.stdout
    assert "\n  notify: DELAY\n  orcpt: rfc822; Away@Example.test\n" in show.stdout
    # No second report for the members or the forwarded copy.
    time.sleep(1)
    assert len(reports(mta, "hkt-alice", 1)) == 1


def test_queue_show_names_each_recipients_dsn_request(mta):
    with RawSMTP(mta.port) as s:
        s.ehlo()
        queue_id = submit(s, "jun@example.org", [
            ("x@elsewhere.example", " NOTIFY=DELAY,FAILURE ORCPT=rfc822;X+40Elsewhere.example"),
            ("y@elsewhere.example", ""),
        ], "waiting", mail_parameters=" RET=FULL ENVID=w+2B1")
    deadline = time.time() + 20
    while queue_id not in mta.queue_files("deferred") and time.time() < deadline:
        time.sleep(0.05)
    show = subprocess.run([os.path.join(BIN, "hikyaku"), "queue", "show", "--envelope", queue_id, "-c", mta.config],
                          capture_output=True, text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    assert "dsn_envid: w+1\n" in show.stdout and "dsn_ret: FULL\n" in show.stdout
    x = show.stdout.index("recipient: <x@elsewhere.example>")
    y = show.stdout.index("recipient: <y@elsewhere.example>")
    assert show.stdout[x:y].endswith("\n  notify: FAILURE,DELAY\n  orcpt: rfc822; X@Elsewhere.example\n")
    assert "notify:" not in show.stdout[y:] and "orcpt:" not in show.stdout[y:]


def test_sendmail_bs_carries_dsn_parameters(mta):
    env = {"PATH": "/usr/bin:/bin", "HIKYAKU_CONFIG": mta.config}
    dialogue = (b"EHLO localhost\r\nMAIL FROM:<hkt-dave@example.test> ENVID=bs-1\r\n"
                b"RCPT TO:<hkt-bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;B+40example.test\r\n"
                b"DATA\r\nSubject: over bs\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    result = subprocess.run([os.path.join(BIN, "sendmail"), "-bs"], input=dialogue, capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"250-DSN\r\n" in result.stdout or b"250 DSN\r\n" in result.stdout
    assert b"Subject: over bs" in mta.wait_mbox("hkt-bob", 1)
    success = by_subject(reports(mta, "hkt-dave", 1), "Successful Mail Delivery Report")
    _, per_message, blocks, _ = parts(success)
    assert per_message["Original-Envelope-Id"] == "bs-1"
    assert [(b["Original-Recipient"], b["Action"]) for b in blocks] == [("rfc822; B@example.test", "delivered")]
