"""A flood of silent connections under `ulimit -n 1024`: viewers keep working.

1,100 connections that send half a request head and then nothing would, without a head
deadline and an open-files budget, use up every descriptor of the web process and lock
out every real viewer. Here the server runs with soft = hard = 1024 open files. The same
server also shows that /status forgets what it no longer measures.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.helpers import MjpegReader, Server, running

HEAD_TIMEOUT_S = 2.0
KEEPALIVE_S = 1.0
SEND_TIMEOUT_S = 2.0
FLOOD = 1100
FLOOD_ADDRS = [f"127.0.0.{i}" for i in range(2, 13)]  # 11 addresses x 100 < the per-ip cap
PER_IP = 150


def _limit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FLOOD + PER_IP + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail(f"this test needs {need} open files in the test process (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        with running("--width", "640", "--height", "480", "--header-timeout",
                     str(HEAD_TIMEOUT_S), "--keepalive-timeout", str(KEEPALIVE_S),
                     "--max-clients-per-ip", str(PER_IP), "--send-timeout", str(SEND_TIMEOUT_S),
                     preexec_fn=_limit_1024) as s:
            yield s
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def web_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int) -> int:
    """The web process's descriptor count once the connection just used has closed."""
    count = web_fds(pid)
    for _ in range(15):
        time.sleep(0.2)
        count, previous = web_fds(pid), count
        if count == previous:
            break
    return count


def half_open(port: int, source: str) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /status HTTP/1.1\r\nHost: flo")
    return s


def wait_all_closed(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Wait until the server has closed every socket; returns the ones still open."""
    left = {s.fileno(): s for s in socks}
    deadline = time.monotonic() + timeout
    poller = select.poll()
    for fd in left:
        poller.register(fd, select.POLLIN)
    while left and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            try:
                data = left[fd].recv(4096)
            except OSError:
                data = b""
            if not data:
                poller.unregister(fd)
                del left[fd]
    return list(left.values())


def timed_get(port: int, path: str, timeout: float) -> tuple[int, float]:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status, time.monotonic() - t0
    finally:
        conn.close()


def test_a_flood_of_half_open_connections_locks_nobody_out(srv: Server) -> None:
    web = srv.status()["pids"]["web"]
    baseline = settled_fds(web)
    flood: list[socket.socket] = []
    try:
        for i in range(FLOOD):
            flood.append(half_open(srv.port, FLOOD_ADDRS[i % len(FLOOD_ADDRS)]))
        t_flood = time.monotonic()
        # Each answered within the head timeout the flood is held to: a server that made
        # real clients wait for the flood to time out would take longer.
        assert timed_get(srv.port, "/status", HEAD_TIMEOUT_S)[0] == 200
        assert timed_get(srv.port, "/healthz", HEAD_TIMEOUT_S)[0] == 200
        t0 = time.monotonic()
        reader = MjpegReader(srv.port, "/color", timeout=HEAD_TIMEOUT_S)
        try:
            assert reader.status == 200
            headers, jpeg = reader.next_part()
            assert jpeg[:2] == b"\xff\xd8"
            assert time.monotonic() - t0 < HEAD_TIMEOUT_S
        finally:
            reader.close()
        # every silent connection is closed by the server once its head deadline passes
        still_open = wait_all_closed(flood, HEAD_TIMEOUT_S + 5.0 - (time.monotonic() - t_flood))
        assert not still_open, f"{len(still_open)} silent connections left open"
        conns = srv.status()["connections"]
        assert conns["evicted"] > 0  # the table did fill up: the oldest made room
        assert conns["evicted"] + conns["timed_out"] >= FLOOD
    finally:
        for s in flood:
            s.close()
    deadline = time.monotonic() + 5.0
    while web_fds(web) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert web_fds(web) <= baseline
    log = srv.log()
    assert "Traceback" not in log
    assert "Too many open files" not in log
    assert log.count("connection table full") == 1, log[-3000:]
    assert "open files: limit 1024" in log


def test_one_address_over_its_cap_gets_503_and_others_still_stream(srv: Server) -> None:
    socks = [half_open(srv.port, "127.0.0.20") for _ in range(PER_IP + 5)]
    try:
        refused = []
        for s in socks[PER_IP:]:
            s.settimeout(2.0)
            refused.append(s.recv(4096))
        assert all(r.startswith(b"HTTP/1.1 503") and b"Retry-After" in r for r in refused)
        reader = MjpegReader(srv.port, "/color", timeout=2.0)
        try:
            assert reader.next_part()[1][:2] == b"\xff\xd8"
        finally:
            reader.close()
    finally:
        for s in socks:
            s.close()
    assert "127.0.0.20 has 150 connections open" in srv.log()


def test_idle_keepalive_connections_are_closed(srv: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    with contextlib.closing(conn):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert r.status == 200 and not r.will_close
        assert conn.sock is not None
        t0 = time.monotonic()
        assert conn.sock.recv(1) == b""  # the server hangs up on the idle connection
        assert KEEPALIVE_S * 0.8 < time.monotonic() - t0 < KEEPALIVE_S + 3.0


@pytest.mark.parametrize("path", ["/color", "/color?fps=10"])
def test_a_stream_client_that_stops_reading_is_dropped(srv: Server, path: str) -> None:
    """By the shared writer (/color) and by a client's own writer (?fps=, as TLS uses)."""

    def color_viewers() -> int:
        return srv.status()["streams"]["color"]["viewers"]

    other = MjpegReader(srv.port, "/color")
    stalled = socket.socket()
    try:
        other.next_part()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", srv.port))
        stalled.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        deadline = time.monotonic() + 10
        while color_viewers() < 2:
            assert time.monotonic() < deadline, "the stalled client never became a viewer"
            other.next_part()
        # It reads nothing from now on: once the kernel buffers are full it takes no
        # bytes, and within the send timeout the server lets it go.
        t0 = time.monotonic()
        while color_viewers() > 1:
            assert time.monotonic() - t0 < SEND_TIMEOUT_S + 15, "stalled client kept"
            other.next_part()  # the reader beside it keeps getting frames meanwhile
        stalled.settimeout(5)
        while stalled.recv(65536):
            pass  # what was buffered, then the server's close
        for _ in range(5):
            other.next_part()
    finally:
        stalled.close()
        other.close()


def test_status_forgets_latency_once_a_stream_has_no_viewers(srv: Server) -> None:
    reader = MjpegReader(srv.port, "/depth", timeout=5.0)
    try:
        for _ in range(10):
            reader.next_part()
        deadline = time.monotonic() + 5.0
        while srv.status()["streams"]["depth"]["latency_ms"]["p50"] is None:
            assert time.monotonic() < deadline, "no latency while streaming"
            time.sleep(0.1)
    finally:
        reader.close()
    deadline = time.monotonic() + 10.0
    while True:
        depth = srv.status()["streams"]["depth"]
        if depth["viewers"] == 0 and depth["latency_ms"] == {"p50": None, "p99": None}:
            break
        assert time.monotonic() < deadline, depth
        time.sleep(0.2)
    # a stream that just got its first viewer has no rate yet: unknown, not 0
    reader = MjpegReader(srv.port, "/combined", timeout=5.0)
    try:
        combined = srv.status()["streams"]["combined"]
        assert combined["viewers"] == 1 and combined["fps_sent"] is None
    finally:
        reader.close()


def test_max_clients_beyond_the_open_files_limit_is_refused_at_start() -> None:
    import subprocess  # noqa: PLC0415

    from tests.helpers import PYTHON, ROOT, free_port  # noqa: PLC0415

    res = subprocess.run(
        [PYTHON, str(ROOT / "app_mp.py"), "--host", "127.0.0.1", "--port", str(free_port()),
         "--max-clients", "5000"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, preexec_fn=_limit_1024)  # noqa: PLW1509
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "app_mp.py: error: --max-clients 5000: the open-files limit (1024) allows at most "
        "944 (raise it with ulimit -n or LimitNOFILE=)"]
