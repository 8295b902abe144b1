"""Remote delivery through smtp-client to a real SMTP server (Debian's
aiosmtpd, run by smtp_peer.py): the wire, retries, bounces, TLS, 8-bit
conversion, connection reuse, routes."""
import base64
import email
import glob
import json
import os
import re
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, HOSTNAME, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_PYTHON = "/usr/bin/python3"
FAST = "minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n"


class Peer:
    def __init__(self, **options):
        self.dir = tempfile.mkdtemp(prefix="hikyaku-peer-", dir="/tmp")
        self.port = free_port()
        config = dict(options, port=self.port, spool=self.dir)
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.process = subprocess.Popen([DEBIAN_PYTHON, os.path.join(HERE, "smtp_peer.py"), path],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(os.path.join(self.dir, "stderr"), "wb"))
        line = self.process.stdout.readline()
        assert line.strip() == b"ready", (line, open(os.path.join(self.dir, "stderr")).read())

    def messages(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "msg-*.json")),
                           key=lambda p: int(re.search(r"msg-(\d+)", p).group(1))):
            with open(path) as f:
                record = json.load(f)
            record["content"] = base64.b64decode(record["content"])
            out.append(record)
        return out

    def wait_messages(self, count, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"peer got {len(self.messages())} messages, expected {count}")

    def wire(self):
        try:
            with open(os.path.join(self.dir, "wire.log"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def sessions(self):
        try:
            return len(open(os.path.join(self.dir, "sessions"), "rb").read())
        except FileNotFoundError:
            return 0

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def make_peer():
    peers = []

    def factory(**options):
        peer = Peer(**options)
        peers.append(peer)
        return peer

    yield factory
    for peer in peers:
        peer.stop()


def routed(make_mta, table, extra=""):
    """An MTA whose mailertable holds `table` (domain -> route)."""
    mta = make_mta(start=False)
    path = os.path.join(mta.etc, "mailertable")
    with open(path, "w") as f:
        for domain, route in table.items():
            f.write(f"{domain}\t{route}\n")
    mta.write_config(f"mailertable_map = {path}\n{extra}")
    mta.start()
    return mta


def send(mta, sender, recipients, message):
    with mta.smtp() as s:
        s.sendmail(sender, recipients, message)


def test_a_message_reaches_the_server_with_crlf_and_dot_stuffing(make_mta, make_peer):
    peer = make_peer()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    body = b"Subject: wire\r\n\r\nfirst\r\n.\r\n..two dots\r\n.leading\r\nlast\r\n"
    send(mta, "sender@client.example.org", ["a@remote.test", "b@remote.test"], body)
    [got] = peer.wait_messages(1)
    assert got["mail_from"] == "sender@client.example.org"
    assert got["rcpt_tos"] == ["a@remote.test", "b@remote.test"]
    assert got["helo"] == HOSTNAME
    # What the server got back after unstuffing is the message as queued
    # (Received:, Message-ID:, Date: added), with CRLF line endings.
    head, body = got["content"].split(b"\r\n\r\n", 1)
    assert body == b"first\r\n.\r\n..two dots\r\n.leading\r\nlast\r\n"
    assert head.startswith(b"Received: from client.example.org") and b"\r\nSubject: wire\r\n" in head
    wire = peer.wire()
    # Every line on the wire ends in CRLF; body dots are doubled.
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert b"\r\n..\r\n...two dots\r\n..leading\r\nlast\r\n.\r\n" in wire
    mta.wait_log(r"to=<a@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as PEER1\)" % peer.port)
    mta.wait_queue_empty()


def test_recipient_refused_with_5xx_bounces_to_the_sender(make_mta, make_peer):
    peer = make_peer(rcpt={"nobody@": "550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown"})
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    send(mta, f"hkt-alice@{HOSTNAME}", ["nobody@remote.test", "ok@remote.test"], b"Subject: partly\r\n\r\nhi\r\n")
    [got] = peer.wait_messages(1)
    assert got["rcpt_tos"] == ["ok@remote.test"]
    bounce = mta.wait_mbox("hkt-alice", 1)
    report = email.message_from_bytes(bounce.split(b"\n", 1)[1])
    assert report.get_content_type() == "multipart/report"
    status = report.get_payload()[1].get_payload()
    fields = "\n".join(str(part) for part in status)
    assert "Final-Recipient: rfc822; nobody@remote.test" in fields
    assert "Status: 5.1.1" in fields
    assert "ok@remote.test" not in fields
    failed = status[1]
    assert failed["Remote-MTA"] == "dns; 127.0.0.1"
    assert " ".join(failed["Diagnostic-Code"].split()) == \
        "smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown"
    scanned = subprocess.run([DEBIAN_PYTHON, "-c", "import sys, email, flufl.bounce as b; "
                              "print(sorted(a.decode() for a in b.scan_message(email.message_from_binary_file(sys.stdin.buffer))))"],
                             input=bounce.split(b"\n", 1)[1], capture_output=True, check=True).stdout
    assert scanned.strip() == b"['nobody@remote.test']"
    mta.wait_log(r"to=<nobody@remote\.test>, relay=.*dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\]:\d+ said: 550 5\.1\.1 <nobody@remote\.test>: Recipient address rejected: User unknown \(in reply to RCPT TO command\)\)")
    mta.wait_queue_empty()


def test_4xx_defers_and_the_retry_delivers(make_mta, make_peer):
    peer = make_peer(rcpt_once={"grey@": "450 4.2.0 <grey@remote.test>: greylisted, try again"})
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"}, FAST)
    send(mta, "sender@client.example.org", ["grey@remote.test"], b"Subject: grey\r\n\r\nlater\r\n")
    mta.wait_log(r"to=<grey@remote\.test>, .*dsn=4\.2\.0, status=deferred \(host .* said: 450 4\.2\.0 <grey@remote\.test>: greylisted, try again \(in reply to RCPT TO command\)\)")
    [got] = peer.wait_messages(1, timeout=30)
    assert got["rcpt_tos"] == ["grey@remote.test"]
    mta.wait_log(r"to=<grey@remote\.test>, .*status=sent")
    mta.wait_queue_empty()


def test_a_peer_without_8bitmime_gets_quoted_printable(make_mta, make_peer):
    peer = make_peer(no_8bitmime=True)
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    message = ("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\nSubject: 8bit\r\n\r\ncaf\u00e9 cr\u00e8me\r\n").encode()
    with mta.smtp() as s:
        s.ehlo()
        s.sendmail("sender@client.example.org", ["a@remote.test"], message, mail_options=["BODY=8BITMIME"])
    [got] = peer.wait_messages(1)
    assert "BODY=8BITMIME" not in " ".join(got["mail_options"])
    assert all(byte < 0x80 for byte in got["content"])
    parsed = email.message_from_bytes(got["content"])
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_payload(decode=True).decode("utf-8") == "caf\u00e9 cr\u00e8me\r\n"


def test_a_peer_with_8bitmime_gets_the_bytes_as_they_are(make_mta, make_peer):
    peer = make_peer()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    message = "Subject: 8bit\r\n\r\ncaf\u00e9\r\n".encode()
    with mta.smtp() as s:
        s.ehlo()
        s.sendmail("sender@client.example.org", ["a@remote.test"], message, mail_options=["BODY=8BITMIME"])
    [got] = peer.wait_messages(1)
    assert "BODY=8BITMIME" in got["mail_options"]
    assert got["content"].endswith("caf\u00e9\r\n".encode())


def make_certificate(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=peer.example.net"], check=True, capture_output=True)
    return cert, key


def test_a_peer_that_offers_starttls_gets_tls(make_mta, make_peer, tmp_path):
    cert, key = make_certificate(str(tmp_path))
    peer = make_peer(tls_cert=cert, tls_key=key)
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    send(mta, "sender@client.example.org", ["a@remote.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    [got] = peer.wait_messages(1)
    assert got["tls"] is True
    # The certificate is self-signed: encrypted, but not trusted, and said so.
    mta.wait_log(r"smtp-client\[\d+\]: Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]" % peer.port)
    assert b"secret" not in peer.wire().split(b"STARTTLS")[0]


def test_encrypt_defers_mail_for_a_peer_without_starttls(make_mta, make_peer):
    peer = make_peer()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"}, "smtp_tls_security_level = encrypt")
    send(mta, "sender@client.example.org", ["a@remote.test"], b"Subject: must be secret\r\n\r\nx\r\n")
    mta.wait_log(r"to=<a@remote\.test>, relay=none, .*dsn=4\.7\.4, status=deferred \(TLS is required, but was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]:%d\)" % peer.port)
    assert peer.messages() == []


def test_no_server_listening_defers_with_the_reason(make_mta):
    port = free_port()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{port}"})
    send(mta, "sender@client.example.org", ["a@remote.test"], b"Subject: nobody home\r\n\r\nx\r\n")
    mta.wait_log(r"to=<a@remote\.test>, relay=none, .*dsn=4\.4\.1, status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused\)" % port)
    listing = subprocess.run([os.path.join(BIN, "hikyaku"), "queue", "list", "-c", mta.config],
                             capture_output=True, text=True).stdout
    assert "Connection refused" in listing and "a@remote.test" in listing


def test_a_server_refusing_every_session_defers(make_mta, make_peer):
    peer = make_peer(greeting="554 5.7.1 no service for you")
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    send(mta, "sender@client.example.org", ["a@remote.test"], b"Subject: refused\r\n\r\nx\r\n")
    mta.wait_log(r"to=<a@remote\.test>, relay=none, .*dsn=4\.7\.1, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\]:\d+ refused to talk to me: 554 5\.7\.1 no service for you\)")


def test_messages_to_one_destination_share_a_connection(make_mta, make_peer):
    peer = make_peer()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"},
                 "smtp_connection_cache_time_limit = 5s\ninitial_destination_concurrency = 1\n"
                 "default_destination_concurrency_limit = 1")
    with mta.smtp() as s:
        for n in range(5):
            s.sendmail("sender@client.example.org", [f"r{n}@remote.test"], f"Subject: {n}\r\n\r\nx\r\n".encode())
    peer.wait_messages(5)
    assert peer.sessions() == 1, peer.sessions()


def test_many_recipients_of_one_message_go_in_one_transaction(make_mta, make_peer):
    peer = make_peer()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"}, "smtp_destination_recipient_limit = 3")
    recipients = [f"r{n}@remote.test" for n in range(7)]
    send(mta, "sender@client.example.org", recipients, b"Subject: many\r\n\r\nx\r\n")
    got = peer.wait_messages(3)
    assert sorted(len(m["rcpt_tos"]) for m in got) == [1, 3, 3]
    assert sorted(r for m in got for r in m["rcpt_tos"]) == sorted(recipients)


def test_the_smart_host_takes_mail_for_other_domains(make_mta, make_peer):
    peer = make_peer()
    mta = make_mta(f"smart_host = [127.0.0.1]:{peer.port}")
    send(mta, "sender@client.example.org", ["someone@elsewhere.example"], b"Subject: smart\r\n\r\nx\r\n")
    [got] = peer.wait_messages(1)
    assert got["rcpt_tos"] == ["someone@elsewhere.example"]
    # Local mail stays local.
    send(mta, "sender@client.example.org", [f"hkt-bob@{HOSTNAME}"], b"Subject: local\r\n\r\nx\r\n")
    mta.wait_mbox("hkt-bob", 1)
    assert len(peer.messages()) == 1


def test_virtusertable_rewrites_the_address_the_server_gets(make_mta, make_peer):
    peer = make_peer()
    mta = make_mta(start=False)
    virt = os.path.join(mta.etc, "virtusertable")
    with open(virt, "w") as f:
        f.write("info@example.test\tjun@remote.test\n")
    table = os.path.join(mta.etc, "mailertable")
    with open(table, "w") as f:
        f.write(f"remote.test\tesmtp:[127.0.0.1]:{peer.port}\n")
    mta.write_config(f"virtusertable_map = {virt}\nmailertable_map = {table}")
    mta.start()
    send(mta, "sender@client.example.org", ["info@example.test"], b"Subject: virt\r\n\r\nx\r\n")
    [got] = peer.wait_messages(1)
    assert got["rcpt_tos"] == ["jun@remote.test"]


def dns_routed(make_mta, dns, table=None, extra=""):
    mta = make_mta(start=False)
    lines = [dns.config, "dns_timeout = 1s", "dns_attempts = 1", extra]
    if table:
        path = os.path.join(mta.etc, "mailertable")
        with open(path, "w") as f:
            for domain, route in table.items():
                f.write(f"{domain}\t{route}\n")
        lines.append(f"mailertable_map = {path}")
    mta.write_config("\n".join(lines))
    mta.start()
    return mta


def bounce_status(mta, user="hkt-alice"):
    """The Status: and Diagnostic-Code: of the one bounce in USER's mbox."""
    report = email.message_from_bytes(mta.wait_mbox(user, 1).split(b"\n", 1)[1])
    recipient = report.get_payload()[1].get_payload()[1]
    return recipient["Status"], recipient["Diagnostic-Code"], recipient["Final-Recipient"]


def test_mx_preference_order_and_fallback_when_the_first_refuses(make_mta, make_peer, dns_server):
    peer = make_peer()
    dns = dns_server(mx={"remote.test": [("mx1.remote.test", 10), ("mx2.remote.test", 20)]},
                     hosts={"mx1.remote.test": ["127.0.0.2"], "mx2.remote.test": ["127.0.0.1"]})
    mta = dns_routed(make_mta, dns, {"remote.test": f"esmtp:remote.test:{peer.port}"})
    send(mta, "sender@client.example.org", ["a@remote.test"], b"Subject: mx\r\n\r\nx\r\n")
    [got] = peer.wait_messages(1)
    assert got["rcpt_tos"] == ["a@remote.test"]
    # The better MX was tried first and refused the connection.
    mta.wait_log(r"smtp-client\[\d+\]: \w+: connect to mx1\.remote\.test\[127\.0\.0\.2\]:%d: Connection refused" % peer.port)
    mta.wait_log(r"to=<a@remote\.test>, relay=mx2\.remote\.test\[127\.0\.0\.1\]:%d, .*status=sent" % peer.port)
    assert dns.queries("remote.test")


def test_null_mx_bounces_at_once(make_mta, dns_server):
    dns = dns_server(null_mx=["nullmx.test"])
    mta = dns_routed(make_mta, dns)
    send(mta, f"hkt-alice@{HOSTNAME}", ["x@nullmx.test"], b"Subject: null\r\n\r\nx\r\n")
    status, diagnostic, final = bounce_status(mta)
    assert status == "5.1.10" and "nullmx.test does not accept mail (nullMX)" in diagnostic
    assert final == "rfc822; x@nullmx.test"


def test_nxdomain_bounces_and_servfail_defers(make_mta, dns_server):
    dns = dns_server(servfail=["broken.test"])
    mta = dns_routed(make_mta, dns)
    send(mta, f"hkt-alice@{HOSTNAME}", ["x@nothere.test"], b"Subject: nx\r\n\r\nx\r\n")
    status, diagnostic, _ = bounce_status(mta)
    assert status == "5.1.2" and "Host or domain name not found" in diagnostic and "name=nothere.test type=MX" in diagnostic
    send(mta, f"hkt-alice@{HOSTNAME}", ["x@broken.test"], b"Subject: servfail\r\n\r\nx\r\n")
    mta.wait_log(r"to=<x@broken\.test>, relay=none, .*dsn=4\.4\.3, status=deferred \(Host or domain name not found\. Name service error for name=broken\.test type=MX: Host not found, try again\)")


def test_an_mx_pointing_back_at_us_bounces_as_a_loop(make_mta, dns_server):
    dns = dns_server(mx={"loop.test": [("mail.loop.test", 10)]}, hosts={"mail.loop.test": ["127.0.0.1"]})
    mta = dns_routed(make_mta, dns)
    send(mta, f"hkt-alice@{HOSTNAME}", ["x@loop.test"], b"Subject: loop\r\n\r\nx\r\n")
    status, diagnostic, _ = bounce_status(mta)
    assert status == "5.4.6" and "mail for loop.test loops back to myself" in diagnostic


def test_notify_success_to_a_peer_without_dsn_gets_a_relayed_report(make_mta, make_peer):
    peer = make_peer()
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
    with mta.smtp() as s:
        s.ehlo()
        s.sendmail(f"hkt-alice@{HOSTNAME}", ["a@remote.test"], b"Subject: tell me\r\n\r\nx\r\n",
                   rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;A@remote.test"])
    [got] = peer.wait_messages(1)
    # aiosmtpd has no DSN: the parameters are not passed on, and the report says relayed.
    assert got["rcpt_options"] == [[]]
    report = email.message_from_bytes(mta.wait_mbox("hkt-alice", 1).split(b"\n", 1)[1])
    recipient = report.get_payload()[1].get_payload()[1]
    assert recipient["Action"] == "relayed" and recipient["Status"] == "2.0.0"
    assert recipient["Original-Recipient"] == "rfc822; A@remote.test"
    assert recipient["Remote-MTA"] == "dns; 127.0.0.1"


def test_backoff_delay_warning_and_expiry_in_order(make_mta):
    port = free_port()
    timing = ("minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n"
              "delay_warning_time = 3s\nmaximal_queue_lifetime = 8s\n")
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{port}"}, timing)
    started = time.time()
    send(mta, f"hkt-alice@{HOSTNAME}", ["late@remote.test"], b"Subject: slow\r\n\r\nx\r\n")
    mta.wait_log(r"late@remote\.test>, .*status=bounced \(message expired after 8 seconds in the queue", timeout=60)
    log = mta.log()
    queue_id = re.search(r"(\w+): to=<late@remote\.test>", log).group(1)
    events = []
    for line in log.splitlines():
        if re.search(rf"{queue_id}: to=<late@remote\.test>, .*status=deferred", line):
            events.append("deferred")
        elif f"{queue_id}: sender delay notification:" in line:
            events.append("warned")
        elif re.search(rf"{queue_id}: to=<late@remote\.test>, .*status=bounced", line):
            events.append("bounced")
    # Tried, then tried again; warned once after 3 s; returned after 8 s.
    assert events[0] == "deferred" and events.count("warned") == 1 and events[-1] == "bounced", events
    assert events.index("warned") >= 2 and events.count("deferred") >= 3, events
    assert 3 <= events.count("deferred") <= 9, events  # backoff: not a retry per second of the 8
    assert time.time() - started >= 7  # whole seconds: 8 s of queue time
    box = mta.wait_mbox("hkt-alice", 2)
    reports = [email.message_from_bytes(b"From " + part) for part in box.split(b"\nFrom ")]
    reports = [email.message_from_bytes(r.as_bytes().split(b"\n", 1)[1]) for r in reports]
    delayed = reports[0].get_payload()[1].get_payload()[1]
    assert delayed["Action"] == "delayed" and delayed["Status"].startswith("4.4.")
    assert delayed["Will-Retry-Until"]
    failed = reports[1].get_payload()[1].get_payload()[1]
    assert failed["Action"] == "failed" and failed["Status"] == "5.4.7"
    assert "Delayed Mail" in reports[0]["Subject"] and "Undelivered Mail" in reports[1]["Subject"]


def test_a_tls_policy_map_entry_requires_tls_for_one_destination(make_mta, make_peer):
    plain = make_peer()
    mta = make_mta(start=False)
    policy = os.path.join(mta.etc, "tls_policy")
    # Entries are looked up by the route's host field, as Postfix's are.
    with open(policy, "w") as f:
        f.write(f"# destination level\n[127.0.0.1]:{plain.port} encrypt\n.secure.test encrypt\n")
    table = os.path.join(mta.etc, "mailertable")
    with open(table, "w") as f:
        f.write(f"mx.secure.test\tesmtp:[127.0.0.1]:{plain.port}\nopen.test\tesmtp:[localhost]:{plain.port}\n")
    mta.write_config(f"mailertable_map = {table}\nsmtp_tls_policy_map = {policy}")
    mta.start()
    send(mta, "sender@client.example.org", ["a@mx.secure.test"], b"Subject: secret\r\n\r\nx\r\n")
    send(mta, "sender@client.example.org", ["b@open.test"], b"Subject: open\r\n\r\nx\r\n")
    [got] = plain.wait_messages(1)
    assert got["rcpt_tos"] == ["b@open.test"]
    mta.wait_log(r"to=<a@mx\.secure\.test>, relay=none, .*dsn=4\.7\.4, status=deferred \(TLS is required, but was not offered")


def test_a_bad_tls_policy_map_line_is_named(make_mta):
    mta = make_mta(start=False)
    policy = os.path.join(mta.etc, "tls_policy")
    with open(policy, "w") as f:
        f.write("example.org encrypt\nexample.net sometimes\n")
    mta.write_config(f"smtp_tls_policy_map = {policy}")
    mta.start()
    mta.wait_log(re.escape(f"{policy}, line 2: expected 'destination level' with level none, may or encrypt, found 'example.net sometimes'"))


BIG = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100


@pytest.mark.parametrize("kind", ["rcpt-5xx", "data-5xx", "size", "null-mx", "nxdomain", "loop", "expired"])
def test_every_failure_kind_gives_a_standard_bounce(kind, make_mta, make_peer, dns_server):
    """Each kind of remote failure comes back as one RFC 3464 report whose
    three parts Python's email package reads, with the required fields,
    and in which flufl.bounce finds exactly the failed recipient."""
    from flufl.bounce import scan_message
    from test_dsn import parts, reports
    failed, body = "x@remote.test", b"Subject: kind\r\n\r\nx\r\n"
    if kind in ("rcpt-5xx", "data-5xx", "size"):
        options = {"rcpt-5xx": {"rcpt": {"x@": "550 5.1.1 <x@remote.test>: User unknown"}},
                   "data-5xx": {"data": "554 5.6.0 Message content rejected"},
                   "size": {"size_limit": 2000}}[kind]
        peer = make_peer(**options)
        mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}"})
        if kind == "size":
            body = BIG
    elif kind == "expired":
        mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{free_port()}"},
                     "minimal_backoff_time = 1s\nmaximal_backoff_time = 1s\nqueue_run_delay = 1s\nmaximal_queue_lifetime = 2s")
    else:
        domain = {"null-mx": "nullmx.test", "nxdomain": "nothere.test", "loop": "loop.test"}[kind]
        failed = f"x@{domain}"
        dns = dns_server(null_mx=["nullmx.test"], mx={"loop.test": [("mail.loop.test", 10)]},
                         hosts={"mail.loop.test": ["127.0.0.1"]})
        mta = dns_routed(make_mta, dns)
    send(mta, f"hkt-alice@{HOSTNAME}", [failed], body)
    [report] = reports(mta, "hkt-alice", 1)
    text, per_message, blocks, original = parts(report)
    assert per_message["Reporting-MTA"] == f"dns; {HOSTNAME}" and per_message["Arrival-Date"]
    [block] = blocks
    assert block["Final-Recipient"] == f"rfc822; {failed}"
    assert block["Action"] == "failed" and block["Status"].startswith("5.")
    assert block["Diagnostic-Code"] and block["Last-Attempt-Date"]
    if kind in ("rcpt-5xx", "data-5xx"):
        assert block["Remote-MTA"] == "dns; 127.0.0.1" and block["Diagnostic-Code"].startswith("smtp; 5")
    assert original.get_content_type() == "message/rfc822"
    assert f"<{failed}>: " in text
    assert scan_message(report) == {failed.encode()}


def test_a_dead_destination_is_suspended_without_holding_up_others(make_mta, make_peer):
    peer = make_peer()
    dead = free_port()
    mta = routed(make_mta, {"dead.test": f"esmtp:[127.0.0.1]:{dead}", "live.test": f"esmtp:[127.0.0.1]:{peer.port}"},
                 "initial_destination_concurrency = 2")
    with mta.smtp() as s:
        for n in range(12):
            s.sendmail("sender@client.example.org", [f"d{n}@dead.test"], f"Subject: dead {n}\r\n\r\nx\r\n".encode())
            s.sendmail("sender@client.example.org", [f"l{n}@live.test"], f"Subject: live {n}\r\n\r\nx\r\n".encode())
    got = peer.wait_messages(12)
    assert sorted(m["rcpt_tos"][0] for m in got) == sorted(f"l{n}@live.test" for n in range(12))
    mta.wait_log(r"qmgr\[\d+\]: \[127\.0\.0\.1\]:%d: delivery temporarily suspended for 5 minutes: connect to" % dead)
    mta.wait_log(r"to=<d\d+@dead\.test>, relay=none, .*status=deferred \(delivery temporarily suspended: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused\)" % dead)
    # Fewer connection attempts than messages: the rest waited without trying.
    attempts = len(re.findall(r"smtp-client\[\d+\]: \w+: to=<d\d+@dead\.test>, relay=none", mta.log()))
    assert attempts < 12, attempts
    deadline = time.time() + 20
    while len(mta.queue_files("deferred")) < 12 and time.time() < deadline:
        time.sleep(0.05)
    assert len(mta.queue_files("deferred")) == 12


def test_smtputf8_mail_goes_through_or_bounces_with_5_6_7(make_mta, make_peer):
    able = make_peer()
    unable = make_peer(smtputf8=False)
    mta = routed(make_mta, {"able.test": f"esmtp:[127.0.0.1]:{able.port}",
                            "unable.test": f"esmtp:[127.0.0.1]:{unable.port}"})
    message = "Subject: gr\u00fc\u00dfe\r\nFrom: J\u00f6rg <j\u00f6rg@client.example>\r\n\r\nhallo\r\n".encode()
    with mta.smtp() as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
        s.sendmail(f"hkt-alice@{HOSTNAME}", ["j\u00fcrgen@able.test"], message, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        s.sendmail(f"hkt-alice@{HOSTNAME}", ["j\u00fcrgen@unable.test"], message, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [got] = able.wait_messages(1)
    assert got["rcpt_tos"] == ["j\u00fcrgen@able.test"] and "SMTPUTF8" in got["mail_options"]
    assert b"with UTF8SMTP id" in got["content"]
    status, diagnostic, final = bounce_status(mta)
    assert status == "5.6.7" and "SMTPUTF8 is required, but was not offered by host" in diagnostic
    assert unable.messages() == []


def test_a_failed_tls_handshake_falls_back_to_plain_text_unless_tls_is_required(make_mta, make_peer):
    peer = make_peer(broken_tls=True)
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{peer.port}",
                            "strict.test": f"esmtp:[localhost]:{peer.port}"})
    send(mta, "sender@client.example.org", ["a@remote.test"], b"Subject: fallback\r\n\r\nx\r\n")
    [got] = peer.wait_messages(1)
    assert got["rcpt_tos"] == ["a@remote.test"]
    mta.wait_log(r"smtp-client\[\d+\]: \w+: Cannot start TLS: handshake with 127\.0\.0\.1\[127\.0\.0\.1\]:%d failed: .*; trying again without TLS" % peer.port)
    # The same peer under the encrypt level: the mail waits.
    policy = os.path.join(mta.etc, "tls_policy")
    with open(policy, "w") as f:
        f.write(f"[localhost]:{peer.port} encrypt\n")
    with open(mta.config, "a") as f:
        f.write(f"smtp_tls_policy_map = {policy}\n")
    mta.reload()
    time.sleep(1)
    send(mta, "sender@client.example.org", ["b@strict.test"], b"Subject: strict\r\n\r\nx\r\n")
    mta.wait_log(r"to=<b@strict\.test>, relay=none, .*dsn=4\.7\.5, status=deferred \(Cannot start TLS: handshake with localhost\[127\.0\.0\.1\]:%d failed" % peer.port)
    assert len(peer.messages()) == 1


SMTP_SINK = "/opt/hikyaku-test/postfix/usr/sbin/smtp-sink"


@pytest.fixture
def smtp_sink(tmp_path):
    """Postfix's smtp-sink (unpacked from Debian's postfix package by
    .ci/run): PIPELINING, 8BITMIME and DSN; every message is appended to
    a dump file with its envelope as X-Mail-Args and X-Rcpt-Args headers."""
    if not os.path.exists(SMTP_SINK):
        pytest.fail(f"{SMTP_SINK} is missing: .ci/run unpacks Debian's postfix package there")
    directory = tempfile.mkdtemp(prefix="hikyaku-sink-", dir="/tmp")
    os.chmod(directory, 0o777)
    port = free_port()
    dump = os.path.join(directory, "dump")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(SMTP_SINK).replace("/sbin", "/lib/postfix"))
    process = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-D", dump, f"127.0.0.1:{port}", "64"], env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            import socket
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)

    class Sink:
        pass
    sink = Sink()
    sink.port, sink.dump = port, dump
    sink.read = lambda: open(dump, "rb").read() if os.path.exists(dump) else b""
    yield sink
    os.killpg(process.pid, 15)
    process.wait()


def test_dsn_parameters_reach_a_dsn_capable_server_and_it_reports_itself(make_mta, smtp_sink):
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{smtp_sink.port}"})
    with mta.smtp() as s:
        s.ehlo()
        s.sendmail(f"hkt-alice@{HOSTNAME}", ["a@remote.test", "b@remote.test"], b"Subject: dsn on\r\n\r\nx\r\n",
                   mail_options=["RET=HDRS", "ENVID=env+2B1"],
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;A+2Btag@remote.test"])
    deadline = time.time() + 20
    while b"Subject: dsn on" not in smtp_sink.read() and time.time() < deadline:
        time.sleep(0.05)
    dump = smtp_sink.read().decode()
    # smtp-sink offers no SIZE; PIPELINING and DSN it has.
    assert "X-Mail-Args: <hkt-alice@mail.example.test> RET=HDRS ENVID=env+2B1\n" in dump, dump
    # (smtplib gives every recipient the same parameters.)
    for rcpt in ("a", "b"):
        assert f"X-Rcpt-Args: <{rcpt}@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Btag@remote.test\n" in dump, dump
    mta.wait_log(r"to=<a@remote\.test>, .*status=sent")
    mta.wait_queue_empty()
    # The server has DSN: reporting success is its business, not ours.
    time.sleep(1)
    assert not os.path.exists(os.path.join(mta.mail, "hkt-alice")) or mta.mbox("hkt-alice") == b""


def test_pipelined_delivery_to_smtp_sink_keeps_dots_and_8bit(make_mta, smtp_sink):
    mta = routed(make_mta, {"remote.test": f"esmtp:[127.0.0.1]:{smtp_sink.port}"})
    body = "Subject: sink\r\n\r\n.\r\n..\r\ncaf\u00e9\r\n".encode()
    with mta.smtp() as s:
        s.ehlo()
        s.sendmail("sender@client.example.org", [f"r{n}@remote.test" for n in range(3)], body, mail_options=["BODY=8BITMIME"])
    deadline = time.time() + 20
    while b"caf" not in smtp_sink.read() and time.time() < deadline:
        time.sleep(0.05)
    dump = smtp_sink.read()
    assert b"X-Mail-Args: <sender@client.example.org> BODY=8BITMIME\n" in dump
    assert dump.count(b"X-Rcpt-Args:") == 3
    # The dump holds the message as the server read it, dots unstuffed.
    assert b"\n\n.\n..\ncaf\xc3\xa9\n" in dump.replace(b"\r\n", b"\n")


def test_a_bad_smart_host_is_named_by_check_and_by_smtp_client(make_mta):
    mta = make_mta("smart_host = esmtp:[relay.example.net]", start=False)
    check = subprocess.run([os.path.join(BIN, "hikyaku"), "check", "-c", mta.config], capture_output=True, text=True)
    assert check.returncode != 0
    assert re.search(r"line \d+: smart_host: .*write \[host\]:port or host, without a mailer name", check.stdout + check.stderr), \
        check.stdout + check.stderr
    mta.start()
    mta.wait_log(r"smtp-client\[\d+\]: .*smart_host: .*without a mailer name")
