"""Trusted proxies: which X-Forwarded-For entry is the client, and who is capped."""

from __future__ import annotations

import argparse

import pytest

from web.limits import (
    PEER_KEY,
    Conn,
    ConnectionGuard,
    ConnLimits,
    Proxies,
    trusted_networks,
)

LOCAL = Proxies(trusted_networks("127.0.0.1,::1"))
CHAIN = Proxies(trusted_networks("127.0.0.1, 10.0.0.0/8"))


def test_the_option_takes_addresses_and_cidrs() -> None:
    assert [str(n) for n in trusted_networks("127.0.0.1,::1")] == ["127.0.0.1/32", "::1/128"]
    assert [str(n) for n in trusted_networks(" 10.1.2.3/8 , fd00::/8")] == [
        "10.0.0.0/8", "fd00::/8"]
    assert trusted_networks("") == ()
    assert len(trusted_networks("*")) == 2
    with pytest.raises(argparse.ArgumentTypeError, match="'nginx' is not an address"):
        trusted_networks("127.0.0.1,nginx")


def test_trust_is_by_address() -> None:
    assert LOCAL.trusts("127.0.0.1") and LOCAL.trusts("::1")
    assert LOCAL.trusts("::ffff:127.0.0.1")  # a dual-stack socket's name for it
    assert not LOCAL.trusts("127.0.0.2") and not LOCAL.trusts("") and not LOCAL.trusts("x")
    assert not Proxies(()).trusts("127.0.0.1")
    assert CHAIN.trusts("10.200.0.1")


@pytest.mark.parametrize(("proxies", "xff", "client"), [
    (LOCAL, None, "127.0.0.1"),  # no header: the proxy made the request itself
    (LOCAL, "203.0.113.7", "203.0.113.7"),
    (LOCAL, "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the left one is the client's word
    (CHAIN, "203.0.113.7, 10.0.0.5", "203.0.113.7"),  # through two of our proxies
    (CHAIN, "10.0.0.9, 10.0.0.5", "10.0.0.9"),  # all trusted: the left-most
    (LOCAL, "[2001:db8::7]:4711", "2001:db8::7"),
    (LOCAL, "203.0.113.7:4711", "203.0.113.7"),
    (LOCAL, "::ffff:203.0.113.7", "203.0.113.7"),
    (LOCAL, "unknown", "127.0.0.1"),  # not an address: stop at the proxy
    (CHAIN, "203.0.113.7, garbage, 10.0.0.5", "10.0.0.5"),
])
def test_the_client_is_the_right_most_untrusted_entry(proxies: Proxies, xff: str | None,
                                                      client: str) -> None:
    assert proxies.client("127.0.0.1", xff) == client


def test_environ_is_rewritten_only_for_a_trusted_peer() -> None:
    env = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7",
           "HTTP_X_FORWARDED_PROTO": "https", "wsgi.url_scheme": "http"}
    LOCAL.apply(env)
    assert (env["REMOTE_ADDR"], env[PEER_KEY], env["wsgi.url_scheme"]) == (
        "203.0.113.7", "127.0.0.1", "https")
    spoofed = {"REMOTE_ADDR": "192.0.2.9", "HTTP_X_FORWARDED_FOR": "203.0.113.7",
               "HTTP_X_FORWARDED_PROTO": "https", "wsgi.url_scheme": "http"}
    LOCAL.apply(spoofed)
    assert (spoofed["REMOTE_ADDR"], spoofed[PEER_KEY], spoofed["wsgi.url_scheme"]) == (
        "192.0.2.9", "192.0.2.9", "http")
    nobody = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    Proxies(trusted_networks("")).apply(nobody)
    assert nobody["REMOTE_ADDR"] == "127.0.0.1"
    odd = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "gopher",
           "wsgi.url_scheme": "http"}
    LOCAL.apply(odd)
    assert odd["wsgi.url_scheme"] == "http"
    assert Proxies.scheme("https, http") == "http"  # the nearest proxy's word counts


def test_a_trusted_proxy_is_not_capped_the_clients_it_names_are() -> None:
    guard = ConnectionGuard(ConnLimits(max_clients_per_ip=2), budget=100)
    assert [guard.admit("127.0.0.1") for _ in range(5)] == [None] * 5
    assert [guard.admit("192.0.2.9") for _ in range(3)] == [None, None, "per-ip"]
    conns = [Conn("127.0.0.1", object()) for _ in range(4)]
    assert [guard.claim(c, "203.0.113.7") for c in conns[:3]] == [True, True, False]
    assert guard.claim(conns[3], "127.0.0.1")  # a trusted client caps its own
    guard.release(conns[0])
    assert guard.claim(conns[2], "203.0.113.7")
    assert guard.per_ip["203.0.113.7"] == 2
    for c in conns:
        guard.release(c)
    assert "203.0.113.7" not in guard.per_ip
    assert guard.counts["refused"] == 2
