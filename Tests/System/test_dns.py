"""MX routing against a real DNS server: dnsmasq answers for the test
zones, and `hikyaku explain` shows what smtp-client would do with a remote
recipient, through the same DNSResolver and libresolv."""
import os
import socket
import subprocess
import time

import pytest

from conftest import BIN, HOSTNAME, dns_query

TIMING = "\ndns_timeout = 1s\ndns_attempts = 1\n"


def explain(mta, recipient):
    result = subprocess.run([os.path.join(BIN, "hikyaku"), "explain", "-c", mta.config, "--rcpt", recipient],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def remote_part(output):
    """The lines after 'remote delivery to ...', without their indent."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("remote delivery to "))
    return [lines[start]] + [line.strip() for line in lines[start + 1:]]


def mta_for(make_mta, dns, extra=""):
    return make_mta(config_extra=dns.config + TIMING + extra, start=False)


def test_mx_hosts_in_preference_order_with_ipv4_then_ipv6(make_mta, dns_server):
    dns = dns_server(mx={"prefs.test": [("mx3.prefs.test", 30), ("mx1.prefs.test", 10), ("mx2.prefs.test", 20)]},
                     hosts={"mx1.prefs.test": ["2001:db8::1", "198.51.100.1"], "mx2.prefs.test": ["198.51.100.2"],
                            "mx3.prefs.test": ["2001:db8::3"]})
    mta = mta_for(make_mta, dns)
    out = remote_part(explain(mta, "jun@Prefs.TEST"))
    assert out == [
        f"remote delivery to prefs.test (MX lookup, name servers {dns.address}):",
        "MX 10 mx1.prefs.test: 198.51.100.1, 2001:db8::1",
        "MX 20 mx2.prefs.test: 198.51.100.2",
        "MX 30 mx3.prefs.test: 2001:db8::3",
    ]
    assert ("MX", "prefs.test") in dns.queries()


def test_equal_preferences_come_in_random_order(make_mta, dns_server):
    dns = dns_server(mx={"shuffle.test": [("a.shuffle.test", 10), ("b.shuffle.test", 10), ("z.shuffle.test", 20)]},
                     hosts={"a.shuffle.test": ["198.51.100.10"], "b.shuffle.test": ["198.51.100.11"],
                            "z.shuffle.test": ["198.51.100.12"]})
    mta = mta_for(make_mta, dns)
    orders = set()
    for _ in range(24):
        out = remote_part(explain(mta, "jun@shuffle.test"))
        assert out[3] == "MX 20 z.shuffle.test: 198.51.100.12"
        orders.add((out[1], out[2]))
    assert orders == {("MX 10 a.shuffle.test: 198.51.100.10", "MX 10 b.shuffle.test: 198.51.100.11"),
                      ("MX 10 b.shuffle.test: 198.51.100.11", "MX 10 a.shuffle.test: 198.51.100.10")}


def test_no_mx_falls_back_to_the_domains_own_addresses(make_mta, dns_server):
    dns = dns_server(hosts={"plain.test": ["198.51.100.3", "2001:db8::3"], "v6only.test": ["2001:db8::6"]},
                     txt={"nothing.test": "v=spf1 -all"})
    mta = mta_for(make_mta, dns)
    assert remote_part(explain(mta, "jun@plain.test"))[1:] == ["no MX, the domain itself: plain.test: 198.51.100.3, 2001:db8::3"]
    assert remote_part(explain(mta, "jun@v6only.test"))[1:] == ["no MX, the domain itself: v6only.test: 2001:db8::6"]
    assert ("A", "plain.test") in dns.queries() and ("AAAA", "plain.test") in dns.queries()
    # A name with a TXT record only: neither MX nor address, so no server.
    assert remote_part(explain(mta, "jun@nothing.test"))[1:] == [
        "bounced: 5.4.4 Host or domain name not found. Name service error for name=nothing.test type=AAAA: "
        "Host found but no data record of requested type"]


def test_null_mx_bounces_at_once_with_5_1_10(make_mta, dns_server):
    dns = dns_server(null_mx=["null.test"])
    mta = mta_for(make_mta, dns)
    assert remote_part(explain(mta, "jun@null.test"))[1:] == ["bounced: 5.1.10 Domain null.test does not accept mail (nullMX)"]
    # No address lookup follows a null MX.
    assert dns.queries("null.test") == [("MX", "null.test")]


def test_nxdomain_bounces_with_5_1_2(make_mta, dns_server):
    dns = dns_server()
    assert dns_query(dns.port, "nowhere.test", "MX") == 3
    mta = mta_for(make_mta, dns)
    assert remote_part(explain(mta, "jun@nowhere.test"))[1:] == [
        "bounced: 5.1.2 Host or domain name not found. Name service error for name=nowhere.test type=MX: Host not found"]


def test_servfail_refused_and_timeout_defer_with_4_4_3(make_mta, dns_server):
    dns = dns_server(servfail=["broken.test"], timeout=["slow.test"])
    assert dns_query(dns.port, "x.broken.test", "MX") == 2
    mta = mta_for(make_mta, dns)
    for domain in ["x.broken.test", "slow.test", "outside.example"]:
        started = time.monotonic()
        out = remote_part(explain(mta, f"jun@{domain}"))
        elapsed = time.monotonic() - started
        assert out[1:] == [f"deferred: 4.4.3 Host or domain name not found. Name service error for name={domain} "
                           "type=MX: Host not found, try again"]
        if domain == "slow.test":
            # dns_timeout = 1s, dns_attempts = 1, one server.
            assert 0.9 < elapsed < 10, elapsed


def test_a_name_server_that_is_not_there_defers(make_mta):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        mta = make_mta(config_extra=f"dns_resolver = 127.0.0.1:{silent.getsockname()[1]}" + TIMING, start=False)
        assert remote_part(explain(mta, "jun@example.org"))[-1].startswith("deferred: 4.4.3 ")


def test_cname_is_followed_for_the_domain_and_for_mx_hosts(make_mta, dns_server):
    dns = dns_server(mx={"real.test": [("mx.real.test", 10)], "via.test": [("alias-mx.test", 10)]},
                     hosts={"mx.real.test": ["198.51.100.20"], "target.test": ["198.51.100.21"]},
                     cnames={"alias.test": "real.test", "alias-mx.test": "mx.real.test", "www.test": "target.test"})
    mta = mta_for(make_mta, dns)
    assert remote_part(explain(mta, "jun@alias.test"))[1:] == ["MX 10 mx.real.test: 198.51.100.20"]
    assert remote_part(explain(mta, "jun@via.test"))[1:] == ["MX 10 alias-mx.test: 198.51.100.20"]
    assert remote_part(explain(mta, "jun@www.test"))[1:] == ["no MX, the domain itself: www.test: 198.51.100.21"]


def test_mx_pointing_to_ourselves_loops_with_5_4_6(make_mta, dns_server):
    dns = dns_server(mx={"byname.test": [(HOSTNAME, 10)], "byaddress.test": [("loopback.test", 10)],
                         "backup.test": [("primary.test", 10), ("loopback.test", 20), ("peer.test", 20)],
                         "lostprimary.test": [("gone.test", 10), ("loopback.test", 20)]},
                     hosts={"loopback.test": ["127.0.0.1"], "primary.test": ["198.51.100.30"], "peer.test": ["198.51.100.31"],
                            "self.test": ["127.0.0.1"]})
    # smtpd listens on 127.0.0.1, so that address is ours.
    mta = mta_for(make_mta, dns)
    for domain in ["byname.test", "byaddress.test", "self.test"]:
        assert remote_part(explain(mta, f"jun@{domain}"))[1:] == [f"bounced: 5.4.6 mail for {domain} loops back to myself"]
    # As a backup MX we send only to better hosts.
    assert remote_part(explain(mta, "jun@backup.test"))[1:] == ["MX 10 primary.test: 198.51.100.30"]
    assert remote_part(explain(mta, "jun@lostprimary.test"))[1:] == ["deferred: 4.4.4 unable to find primary relay for lostprimary.test"]


def test_mailertable_hosts_and_hosts_file_entries(make_mta, dns_server):
    dns = dns_server(hosts={"localhost": ["198.51.100.99"], "relay.test": ["198.51.100.40"]})
    mta = make_mta(start=False)
    table = os.path.join(mta.etc, "mailertable")
    with open(table, "w") as f:
        f.write("pinned.example smtp:[localhost]:2526\n"
                "relayed.example relay:[relay.test]\n"
                ".example esmtp:[IPv6:2001:db8::25]:2525\n")
    mta.write_config(dns.config + TIMING + f"mailertable_map = {table}\n")
    out = remote_part(explain(mta, "jun@pinned.example"))
    # /etc/hosts answers before DNS: localhost is not 198.51.100.99.
    assert out[0] == f"remote delivery to [localhost]:2526 (no MX lookup, name servers {dns.address}):"
    assert out[1].startswith("host localhost: 127.0.0.1") and out[1].endswith(" (hosts file)"), out
    assert dns.queries("localhost") == []
    assert remote_part(explain(mta, "jun@relayed.example"))[1:] == ["host relay.test: 198.51.100.40"]
    assert ("MX", "relay.test") not in dns.queries()
    assert remote_part(explain(mta, "jun@other.example"))[1:] == ["host IPv6:2001:db8::25: 2001:db8::25 (address literal)"]
    assert remote_part(explain(mta, "jun@[198.51.100.50]"))[1:] == ["host 198.51.100.50: 198.51.100.50 (address literal)"]
    # The loop check is for port 25 only: [localhost]:2526 is not us.
    with open(table, "w") as f:
        f.write("pinned.example smtp:[localhost]\n")
    assert remote_part(explain(mta, "jun@pinned.example"))[1:] == ["bounced: 5.4.6 mail for localhost loops back to myself"]


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_an_ipv6_name_server_and_aaaa_only_hosts(make_mta, dns_server):
    dns = dns_server(mx={"six.test": [("mx.six.test", 5)]}, hosts={"mx.six.test": ["2001:db8::66"]}, ipv6=True)
    mta = make_mta(config_extra=f"dns_resolver = [::1]:{dns.port}" + TIMING, start=False)
    assert remote_part(explain(mta, "jun@six.test")) == [
        f"remote delivery to six.test (MX lookup, name servers [::1]:{dns.port}):", "MX 5 mx.six.test: 2001:db8::66"]


def test_a_bad_dns_resolver_names_file_line_and_key(make_mta):
    mta = make_mta(config_extra="dns_resolver = dns.example.org:53", start=False)
    result = subprocess.run([os.path.join(BIN, "hikyaku"), "explain", "-c", mta.config, "--rcpt", "jun@example.org"],
                            capture_output=True, text=True, timeout=60)
    line = open(mta.config).read().splitlines().index("dns_resolver = dns.example.org:53") + 1
    expected = (f"{mta.config}, line {line}: dns_resolver: 'dns.example.org' is not a numeric IPv4 or IPv6 address "
                "in 'dns.example.org:53'; expected an address like 127.0.0.1:5353, [::1]:53 or 192.0.2.1")
    assert result.returncode != 0 and expected in result.stderr, result.stderr
    check = subprocess.run([os.path.join(BIN, "hikyaku"), "check", "-c", mta.config], capture_output=True, text=True, timeout=60)
    assert check.returncode != 0 and expected in check.stdout + check.stderr
