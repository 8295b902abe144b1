"""smtpd over TLS: STARTTLS on port 25 and on submission, implicit TLS on
smtps, the versions it will speak, and the STARTTLS command injection
(CVE-2011-0411) that a plain-text pipeline must never get past."""
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import HOSTNAME, free_port
from smtpclient import RawSMTP


def certificate(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", f"/CN={HOSTNAME}"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_mta(make_mta):
    def factory(extra=""):
        mta = make_mta(start=False)
        cert, key = certificate(mta.etc)
        mta.submission_port, mta.smtps_port = free_port(), free_port()
        mta.write_config(f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n"
                         f"submission_listen = 127.0.0.1:{mta.submission_port}\nsmtps_listen = 127.0.0.1:{mta.smtps_port}\n{extra}")
        mta.start()
        return mta
    return factory


def read_reply(stream):
    lines = []
    while True:
        line = stream.readline()
        if not line:
            return lines
        lines.append(line.decode().rstrip("\r\n"))
        if len(line) > 3 and line[3:4] == b" ":
            return lines


def test_starttls_then_mail_over_tls(tls_mta):
    mta = tls_mta()
    swaks = subprocess.run(["swaks", "--server", f"127.0.0.1:{mta.port}", "--tls", "--from", "a@client.example",
                            "--to", f"hkt-alice@{HOSTNAME}", "--header", "Subject: over tls"],
                           capture_output=True, text=True, timeout=60)
    assert swaks.returncode == 0, swaks.stdout + swaks.stderr
    assert "<-  220 2.0.0 Ready to start TLS" in swaks.stdout
    # After the handshake EHLO no longer offers STARTTLS.
    after = swaks.stdout.split("TLS started")[1]
    assert "STARTTLS" not in after.split("~> MAIL FROM")[0]
    data = mta.wait_mbox("hkt-alice", 1).decode()
    assert re.search(r"Received: from client\.example\.org \(localhost \[127\.0\.0\.1\]\)\n\t\(using TLSv1\.[23]\)\n\tby mail\.example\.test \(hikyaku\) with ESMTPS id ", data) or \
        re.search(r"\(using TLSv1\.[23]\)\n\tby mail\.example\.test \(hikyaku\) with ESMTPS id ", data), data
    mta.wait_log(r"smtpd\[\d+\]: TLSv1\.[23] connection established from localhost\[127\.0\.0\.1\]")


def test_openssl_s_client_and_tls_versions(tls_mta):
    mta = tls_mta()
    def s_client(*options):
        return subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{mta.port}", *options],
                              input=b"QUIT\r\n", capture_output=True, timeout=30)
    ok = s_client("-tls1_2")
    assert ok.returncode == 0 and b"Protocol  : TLSv1.2" in ok.stdout, ok.stdout.decode() + ok.stderr.decode()
    assert b"New, TLSv1.3, Cipher is" in s_client().stdout
    for old in ("-tls1", "-tls1_1"):
        refused = s_client(old)
        assert refused.returncode != 0 or b"Cipher is (NONE)" in refused.stdout, old


def test_tls12_cipher_suites_follow_smtpd_tls_cipherlist(tls_mta):
    """TLS 1.2 offers forward-secret AEAD suites only by default; the
    cipher string widens or narrows that; one that selects nothing is
    logged and STARTTLS is not offered."""
    def s_client(mta, cipher):
        return subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{mta.port}",
                               "-tls1_2", "-cipher", cipher], input=b"QUIT\r\n", capture_output=True, timeout=30)
    mta = tls_mta()
    assert b"Cipher is ECDHE-RSA-AES256-GCM-SHA384" in s_client(mta, "ECDHE-RSA-AES256-GCM-SHA384").stdout
    assert b"Cipher is ECDHE-RSA-CHACHA20-POLY1305" in s_client(mta, "ECDHE-RSA-CHACHA20-POLY1305").stdout
    for weak in ("ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "AES128-SHA"):
        refused = s_client(mta, weak)
        assert refused.returncode != 0 or b"Cipher is (NONE)" in refused.stdout, weak
    mta.stop()
    wider = tls_mta("smtpd_tls_cipherlist = ECDHE-RSA-AES256-GCM-SHA384, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n")
    assert b"Cipher is ECDHE-RSA-AES128-SHA" in s_client(wider, "ECDHE-RSA-AES128-SHA").stdout
    wider.stop()
    broken = tls_mta("smtpd_tls_cipherlist = ECDHE-RSA-AES128-GCM-SHA256:NO-SUCH-CIPHER\n")
    broken.wait_log(r"smtpd\[\d+\]: .*TLS is not available: .*hikyaku\.conf, line \d+: smtpd_tls_cipherlist: "
                    r"unknown TLS 1\.2 cipher suite \"NO-SUCH-CIPHER\"")
    with RawSMTP(broken.port) as s:
        assert "STARTTLS" not in s.ehlo()


def test_a_second_starttls_gets_503(tls_mta):
    mta = tls_mta()
    with socket.create_connection(("127.0.0.1", mta.port), timeout=10) as raw:
        stream = raw.makefile("rb")
        read_reply(stream)
        raw.sendall(b"EHLO c\r\n"); read_reply(stream)
        raw.sendall(b"STARTTLS\r\n")
        assert read_reply(stream) == ["220 2.0.0 Ready to start TLS"]
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        tls = context.wrap_socket(raw, server_hostname=HOSTNAME)
        tstream = tls.makefile("rb")
        tls.sendall(b"EHLO c\r\n"); read_reply(tstream)
        tls.sendall(b"STARTTLS\r\n")
        assert read_reply(tstream) == ["503 5.5.1 Error: TLS already active"]


def test_starttls_command_injection_is_not_answered(tls_mta):
    """CVE-2011-0411: commands pipelined after STARTTLS in plain text must
    be thrown away, not answered inside TLS as if the client sent them."""
    mta = tls_mta()
    with socket.create_connection(("127.0.0.1", mta.port), timeout=10) as raw:
        stream = raw.makefile("rb")
        read_reply(stream)
        raw.sendall(b"EHLO c\r\n"); read_reply(stream)
        raw.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.example>\r\n")
        assert read_reply(stream) == ["220 2.0.0 Ready to start TLS"]
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        tls = context.wrap_socket(raw, server_hostname=HOSTNAME)
        tstream = tls.makefile("rb")
        tls.sendall(b"NOOP\r\n")
        # The first reply inside TLS answers NOOP, not the injected RSET.
        assert read_reply(tstream) == ["250 2.0.0 Ok"]
        tls.sendall(b"EHLO c\r\nRCPT TO:<hkt-alice@example.test>\r\n")
        read_reply(tstream)
        # The injected MAIL was never taken.
        assert read_reply(tstream) == ["503 5.5.1 Error: need MAIL command"]
    mta.wait_log(r"bytes sent after STARTTLS were discarded")


def test_submission_requires_tls_and_smtps_speaks_tls_at_once(tls_mta):
    mta = tls_mta()
    with socket.create_connection(("127.0.0.1", mta.submission_port), timeout=10) as raw:
        stream = raw.makefile("rb")
        read_reply(stream)
        raw.sendall(b"EHLO c\r\n")
        assert "250-STARTTLS" in read_reply(stream)
        raw.sendall(b"MAIL FROM:<a@client.example>\r\n")
        assert read_reply(stream) == ["530 5.7.0 Must issue a STARTTLS command first"]
    swaks = subprocess.run(["swaks", "--server", f"127.0.0.1:{mta.smtps_port}", "--tlsc", "--from", "a@client.example",
                            "--to", f"hkt-bob@{HOSTNAME}", "--header", "Subject: smtps"],
                           capture_output=True, text=True, timeout=60)
    # TLS from the first byte (the greeting comes inside it), no STARTTLS,
    # AUTH offered and required.
    assert "=== TLS started with cipher TLSv1." in swaks.stdout.split("<~  220 ")[0], swaks.stdout
    ehlo = swaks.stdout.split("~> MAIL FROM")[0]
    assert "STARTTLS" not in ehlo and "250-AUTH PLAIN LOGIN" in ehlo
    assert "530 5.7.0 Authentication required" in swaks.stdout


# SMTP AUTH on submission, checked by a real Dovecot (dovecot-core) through
# its authentication socket, as Postfix's smtpd_sasl_type = dovecot does.

import smtplib

PASSWORDS = {"hkt-alice": "wonderland", "hkt-bob": "builder"}


@pytest.fixture
def dovecot_auth():
    started = []

    def start(mta):
        run = os.path.join(mta.root, "dovecot-auth")
        os.makedirs(run)
        with open(os.path.join(run, "users"), "w") as f:
            for user, password in PASSWORDS.items():
                f.write(f"{user}:{{PLAIN}}{password}\n")
        conf = os.path.join(run, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""base_dir = {run}/base
state_dir = {run}/state
log_path = {run}/dovecot.log
ssl = no
protocols =
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {run}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {mta.spool}/private/auth {{
    mode = 0660
    user = hikyaku
    group = hikyaku
  }}
}}
""")
        process = subprocess.Popen(["dovecot", "-c", conf, "-F"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        started.append((process, conf))
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(mta.spool, "private", "auth")) and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(os.path.join(mta.spool, "private", "auth")), open(os.path.join(run, "dovecot.log")).read()
        return run

    yield start
    for process, conf in started:
        subprocess.run(["doveadm", "-c", conf, "stop"], capture_output=True, timeout=30)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def submission_client(mta, source="127.0.0.2"):
    client = smtplib.SMTP("127.0.0.1", mta.submission_port, local_hostname="client.example.org",
                          source_address=(source, 0), timeout=30)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return client, context


def test_submission_needs_auth_checked_by_dovecot(tls_mta, dovecot_auth):
    mta = tls_mta()
    dovecot_auth(mta)
    client, context = submission_client(mta)
    with client:
        client.ehlo()
        assert not client.has_extn("auth")
        # AUTH in plain text is refused before anything is checked.
        code, text = client.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(b"\0hkt-alice\0wonderland").decode())
        assert (code, text) == (538, b"5.7.11 Encryption required for requested authentication mechanism")
        client.starttls(context=context)
        client.ehlo()
        assert client.has_extn("auth") and "PLAIN" in client.esmtp_features["auth"].upper()
        code, text = client.docmd("MAIL FROM:<hkt-alice@example.test>")
        assert (code, text) == (530, b"5.7.0 Authentication required")
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login("hkt-alice", "wrong")
        assert failed.value.smtp_code == 535 and failed.value.smtp_error.startswith(b"5.7.8 Error: authentication failed")
        client.login("hkt-alice", "wonderland")
        # Authenticated: relaying from 127.0.0.2 is allowed.
        client.sendmail("hkt-alice@example.test", [f"hkt-bob@{HOSTNAME}", "someone@elsewhere.example"],
                        b"Subject: submitted\r\n\r\nx\r\n")
    data = mta.wait_mbox("hkt-bob", 1)
    assert b"with ESMTPSA id" in data
    mta.wait_log(r"smtpd\[\d+\]: warning: unknown\[127\.0\.0\.2\]: SASL PLAIN authentication failed")
    mta.wait_log(r"smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.2\], sasl_username=hkt-alice")


def test_auth_login_and_someone_elses_sender_is_refused(tls_mta, dovecot_auth):
    mta = tls_mta()
    dovecot_auth(mta)
    client, context = submission_client(mta)
    with client:
        client.ehlo()
        client.starttls(context=context)
        client.ehlo()
        client.user, client.password = "hkt-bob", "builder"
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.mail("hkt-alice@example.test")
        code, text = client.rcpt(f"hkt-carol@{HOSTNAME}")
        assert (code, text) == (553, b"5.7.1 <hkt-alice@example.test>: Sender address rejected: not owned by user hkt-bob")
        client.rset()
        client.mail("hkt-bob+lists@example.test")
        assert client.rcpt(f"hkt-carol@{HOSTNAME}")[0] == 250


def test_smtps_with_auth_through_swaks(tls_mta, dovecot_auth):
    mta = tls_mta()
    dovecot_auth(mta)
    swaks = subprocess.run(["swaks", "--server", f"127.0.0.1:{mta.smtps_port}", "--tlsc", "--auth", "PLAIN",
                            "--auth-user", "hkt-alice", "--auth-password", "wonderland",
                            "--from", "hkt-alice@example.test", "--to", "far@elsewhere.example", "--header", "Subject: smtps auth"],
                           capture_output=True, text=True, timeout=60)
    assert swaks.returncode == 0, swaks.stdout + swaks.stderr
    assert "235 2.7.0 Authentication successful" in swaks.stdout


def test_repeated_failures_end_the_session(tls_mta, dovecot_auth):
    mta = tls_mta()
    dovecot_auth(mta)
    client, context = submission_client(mta)
    client.ehlo()
    client.starttls(context=context)
    client.ehlo()
    import base64
    wrong = "PLAIN " + base64.b64encode(b"\0hkt-alice\0nope").decode()
    assert client.docmd("AUTH", wrong)[0] == 535
    assert client.docmd("AUTH", wrong)[0] == 535
    # The third failure ends the session.
    code, text = client.docmd("AUTH", wrong)
    assert code == 535
    assert client.getreply() == (421, b"4.7.0 mail.example.test Error: too many failed authentication attempts")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
