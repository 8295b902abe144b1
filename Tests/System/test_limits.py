"""smtpd under clients that ask too much: the session cap, per-client
connection counts and rates, message and recipient rates, a client that
trickles a command byte by byte, and one that takes too long over DATA."""
import time

from conftest import HOSTNAME
from smtpclient import RawSMTP


def test_connection_count_per_client_and_the_session_cap(make_mta):
    mta = make_mta("smtpd_client_connection_count_limit = 2\nsmtpd_session_limit = 4")
    held = [RawSMTP(mta.port, source="127.0.0.2") for _ in range(2)]
    assert all(c.greeting.startswith("220 ") for c in held)
    third = RawSMTP(mta.port, source="127.0.0.2")
    assert third.greeting == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.2"
    assert third.reply() == ""  # and the connection is closed
    # Other clients still get in, up to the session cap.
    held += [RawSMTP(mta.port, source="127.0.0.3") for _ in range(2)]
    assert held[-1].greeting.startswith("220 ")
    busy = RawSMTP(mta.port, source="127.0.0.4")
    assert busy.greeting == f"421 4.7.0 {HOSTNAME} Error: too many connections, try again later"
    for c in held:
        c.close()
    # A closed session frees its place.
    time.sleep(0.5)
    with RawSMTP(mta.port, source="127.0.0.2") as again:
        assert again.greeting.startswith("220 ")
    mta.wait_log(r"smtpd\[\d+\]: warning: unknown\[127\.0\.0\.2\]: connection count limit exceeded; refused with 421")


def test_connection_rate(make_mta):
    mta = make_mta("smtpd_client_connection_rate_limit = 3")
    for _ in range(3):
        with RawSMTP(mta.port, source="127.0.0.2") as c:
            assert c.greeting.startswith("220 ")
    with RawSMTP(mta.port, source="127.0.0.2") as c:
        assert c.greeting == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.2"
    # Loopback is never limited.
    for _ in range(5):
        with RawSMTP(mta.port) as c:
            assert c.greeting.startswith("220 ")


def test_message_and_recipient_rates(make_mta):
    mta = make_mta("smtpd_client_message_rate_limit = 2\nsmtpd_client_recipient_rate_limit = 4")
    with RawSMTP(mta.port, source="127.0.0.2") as s:
        s.ehlo()
        for n in range(2):
            assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
            assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
            assert s.command("RCPT TO:<hkt-bob@example.test>") == "250 2.1.5 Ok"
            assert s.command("RSET") == "250 2.0.0 Ok"
        s.command("MAIL FROM:<a@example.org>")
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "452 4.3.2 Error: too much mail from 127.0.0.2"
    mta2 = make_mta("smtpd_client_recipient_rate_limit = 3")
    with RawSMTP(mta2.port, source="127.0.0.2") as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        for user in ("hkt-alice", "hkt-bob", "hkt-carol"):
            assert s.command(f"RCPT TO:<{user}@example.test>") == "250 2.1.5 Ok"
        assert s.command("RCPT TO:<hkt-dave@example.test>") == "452 4.5.3 Error: too many recipients from 127.0.0.2"


def test_a_command_trickled_byte_by_byte_times_out(make_mta):
    mta = make_mta("smtpd_timeout = 2s")
    with RawSMTP(mta.port) as s:
        s.ehlo()
        started = time.time()
        reply = ""
        for byte in b"NOOPNOOPNOOPNOOP":
            try:
                s.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.5)
            s.sock.settimeout(0.01)
            try:
                chunk = s.sock.recv(1000)
                reply = chunk.decode()
                break
            except (TimeoutError, OSError):
                pass
        assert reply.startswith(f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"), reply
        assert time.time() - started < 4


def test_a_message_that_takes_too_long_is_dropped(make_mta):
    mta = make_mta("smtpd_timeout = 10s\nsmtpd_data_time_limit = 2s")
    with RawSMTP(mta.port) as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        s.command("RCPT TO:<hkt-alice@example.test>")
        assert s.command("DATA").startswith("354")
        s.sock.settimeout(0.2)
        reply = b""
        for n in range(20):
            try:
                s.send(f"line {n}\r\n")
            except OSError:
                break
            try:
                reply = s.sock.recv(1000)
                if reply:
                    break
            except (TimeoutError, OSError):
                pass
            time.sleep(0.3)
        assert reply.startswith(f"421 4.4.2 {HOSTNAME} Error: timeout exceeded".encode()), reply
    time.sleep(1)
    assert mta.queue_files("incoming") == [] and mta.queue_files("active") == []
    mta.wait_log(r"message not complete within smtpd_data_time_limit; dropped")
