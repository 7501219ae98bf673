"""Trusted proxies on the real server: X-Forwarded-For names the client, and only when a
trusted proxy sends it.

The test process plays the proxy from 127.0.0.1 (trusted by default) and the outsider from
other loopback addresses; the server runs with a per-address cap of 3 so the cap bites
after a handful of streams.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import MjpegReader, Server, running

CAP = 3
SMALL = ("--width", "320", "--height", "240")


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    with running(*SMALL, "--max-clients-per-ip", str(CAP), "--log-level", "debug") as s:
        yield s


def status(port: int, source: str = "127.0.0.50") -> dict[str, Any]:
    """/status asked from an address no test caps."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/status")
        r = conn.getresponse()
        assert r.status == 200
        return json.loads(r.read())
    finally:
        conn.close()


def wait_status(port: int, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    """/status once check(doc) holds."""
    deadline = time.monotonic() + timeout
    while True:
        doc = status(port)
        if check(doc):
            return doc
        assert time.monotonic() < deadline, doc["clients"]
        time.sleep(0.1)


def wait_log(srv: Server, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{srv.log()[-3000:]}"
        time.sleep(0.1)
    return srv.log()


@contextlib.contextmanager
def streams(port: int, n: int, **kw: Any) -> Iterator[list[MjpegReader]]:
    readers: list[MjpegReader] = []
    try:
        for _ in range(n):
            readers.append(MjpegReader(port, "/color", timeout=5, **kw))
        yield readers
    finally:
        for r in readers:
            r.close()


def test_a_trusted_proxy_names_the_client_and_its_cap_applies(srv: Server) -> None:
    via = {"X-Forwarded-For": "198.51.100.1, 198.51.100.7", "X-Forwarded-Proto": "https"}
    with streams(srv.port, CAP, headers=via) as readers, \
            streams(srv.port, 1, headers={"X-Forwarded-For": "198.51.100.8"}) as other:
        for r in readers + other:
            assert r.status == 200
            assert r.next_part()[1][:2] == b"\xff\xd8"
        # More connections from the proxy than the cap allows one address: not capped.
        assert len(readers + other) > CAP
        over = MjpegReader(srv.port, "/color", timeout=5, headers=via)
        try:
            assert over.status == 503 and over.headers["retry-after"] == "5"
            assert json.loads(over.resp.read())["detail"] == "too many connections"
        finally:
            over.close()
        doc = status(srv.port)
        assert doc["clients"] == {"198.51.100.7": {"color": CAP}, "198.51.100.8": {"color": 1}}
    log = wait_log(srv, '198.51.100.8 via 127.0.0.1 "GET /color HTTP/1.1" 200')
    assert (f"198.51.100.7 (through 127.0.0.1) has {CAP} connections open "
            f"(--max-clients-per-ip {CAP}): refusing more from it") in log
    assert '198.51.100.7 via 127.0.0.1 "GET /color HTTP/1.1" 503' in log
    assert "198.51.100.1" not in log  # the entry the client wrote itself is not believed
    # Once its streams have ended, the client's count is back to zero.
    wait_status(srv.port, lambda d: d["clients"] == {})
    with streams(srv.port, CAP, headers=via) as again:
        assert all(r.status == 200 for r in again)
    wait_status(srv.port, lambda d: d["clients"] == {})


def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing(srv: Server) -> None:
    def spoof(i: int) -> dict[str, str]:
        return {"X-Forwarded-For": f"203.0.113.{i}", "X-Forwarded-Proto": "https"}

    readers = []
    try:
        for i in range(CAP + 1):
            readers.append(MjpegReader(srv.port, "/color", timeout=5, source="127.0.0.9",
                                       headers=spoof(i)))
        assert [r.status for r in readers] == [200] * CAP + [503]
        for r in readers[:CAP]:
            assert r.next_part()[1][:2] == b"\xff\xd8"
        clients = status(srv.port)["clients"]
        assert clients["127.0.0.9"] == {"color": CAP}
        assert not [c for c in clients if c.startswith("203.0.113.")], clients
    finally:
        for r in readers:
            r.close()
    log = wait_log(srv, '127.0.0.9 "GET /color HTTP/1.1" 200')
    assert f"127.0.0.9 has {CAP} connections open (--max-clients-per-ip {CAP})" in log
    assert "203.0.113." not in log


def test_an_empty_list_trusts_no_one() -> None:
    with running(*SMALL, "--max-clients-per-ip", "2", "--forwarded-allow-ips", "") as s:
        codes = []
        with contextlib.ExitStack() as stack:
            for i in range(3):
                r = stack.enter_context(contextlib.closing(MjpegReader(
                    s.port, "/color", timeout=5, headers={"X-Forwarded-For": f"192.0.2.{i}"})))
                codes.append(r.status)
            assert codes == [200, 200, 503]
            assert status(s.port)["clients"] == {"127.0.0.1": {"color": 2}}
        assert "127.0.0.1 has 2 connections open" in s.log()


def test_a_bad_request_after_a_forwarded_one_is_logged_as_the_proxys(srv: Server) -> None:
    """A kept-alive proxy connection carries many clients: a request whose head does not
    parse belongs to none of them."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s, \
            s.makefile("rb") as f:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.44\r\n\r\n")
        assert f.readline().startswith(b"HTTP/1.1 200")
        head = {}
        while (line := f.readline().strip()):
            k, _, v = line.decode().partition(":")
            head[k.strip().lower()] = v.strip()
        assert head.get("connection") != "close"
        f.read(int(head["content-length"]))  # the whole answer: the connection is idle
        s.sendall(b"GET /healthz?x HTTP/1.1 junk\r\n\r\n")
        assert f.readline().startswith(b"HTTP/1.1 400")
    log = wait_log(srv, '127.0.0.1 "GET /healthz?x HTTP/1.1 junk" 400')
    assert '198.51.100.44 via 127.0.0.1 "GET /healthz HTTP/1.1" 200' in log
