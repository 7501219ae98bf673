"""The documented nginx reverse-proxy recipe, with a real nginx in front of the server.

One server with the default options and one nginx built from deploy/nginx-camera.conf (only
its listen and upstream addresses changed) serve the module's tests.
"""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require
from tests.helpers import RATE_SHARE, ROOT, MjpegReader, Server, free_port, running

VIEWERS = 300
VIEWER_ADDRS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")  # 100 viewers each behind nginx
FLOOD_ADDR = "127.0.0.6"
DEFAULT_CAP = 256  # --max-clients-per-ip's default
WORKER_CONNECTIONS = 1024  # two per proxied viewer, and room to spare
NEED_FILES = VIEWERS + DEFAULT_CAP + 200


@dataclass
class Proxy:
    """nginx running the recipe on `port`, in front of `server`."""

    server: Server
    port: int
    proc: subprocess.Popen[bytes]
    conf: Path


def site_conf(backend_port: int, proxy_port: int) -> str:
    """deploy/nginx-camera.conf with only its addresses changed."""
    site = (ROOT / "deploy" / "nginx-camera.conf").read_text()
    site = site.replace("127.0.0.1:5000", f"127.0.0.1:{backend_port}")
    return re.sub(r"listen 8080;", f"listen 127.0.0.1:{proxy_port};", site)


def nginx_conf(prefix: Path, site: str) -> Path:
    """A whole nginx.conf around `site`, keeping every file nginx writes under `prefix`."""
    for d in ("logs", "tmp"):
        (prefix / d).mkdir(exist_ok=True)
    temp = "".join(f"  {k}_temp_path {prefix}/tmp/{k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
                    f"worker_processes 1;\nworker_rlimit_nofile {2 * WORKER_CONNECTIONS};\n"
                    f"events {{ worker_connections {WORKER_CONNECTIONS}; }}\n"
                    f"http {{\n  access_log off;\n{temp}{site}\n}}\n")
    return conf


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    nginx = require("nginx")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NEED_FILES:
        pytest.fail(f"these tests need {NEED_FILES} open files (hard limit {hard})")
    # This process holds every client socket; nginx and the server inherit the limit.
    want = 2 * NEED_FILES if hard == resource.RLIM_INFINITY else min(hard, 2 * NEED_FILES)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    prefix = tmp_path_factory.mktemp("nginx")
    try:
        with running("--width", "320", "--height", "240", "--fps", "30") as srv:
            port = free_port()
            conf = nginx_conf(prefix, site_conf(srv.port, port))
            proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g",
                                     "daemon off;"], stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 10
                while True:  # until nginx listens
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except ConnectionRefusedError:
                        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                        assert time.monotonic() < deadline, "nginx did not start"
                        time.sleep(0.05)
                yield Proxy(srv, port, proc, conf)
            finally:
                proc.terminate()
                proc.wait(10)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_stream_through_nginx_keeps_rate_and_latency(proxy: Proxy) -> None:
    srv = proxy.server
    r = MjpegReader(proxy.port, "/color")
    try:
        assert r.status == 200
        r.next_part()
        latencies = []
        mark = srv.mark()
        t0 = time.monotonic()
        n = 90
        for _ in range(n):
            headers, body = r.next_part()
            latencies.append(time.time() - float(headers["x-timestamp"]))
            assert body[:2] == b"\xff\xd8"
        fps = n / (time.monotonic() - t0)
        rates = srv.rates(mark)
        bound = srv.latency_bound("color")
    finally:
        r.close()
    latencies.sort()
    # Through the proxy, the client gets the frames encoded meanwhile, each frame
    # within two frame intervals (plus its encode) of its capture.
    assert fps >= RATE_SHARE * rates.encoded["color"], (fps, rates)
    assert latencies[len(latencies) // 2] < bound, (bound, latencies)


def test_300_viewers_through_nginx_all_get_frames(proxy: Proxy) -> None:
    """More viewers than --max-clients-per-ip behind one nginx: every one streams, and the
    server sees each by the address nginx forwards for it."""
    srv = proxy.server
    with contextlib.ExitStack() as stack:
        readers = []
        for i in range(VIEWERS):  # every connection opened first, then all held at once
            r = MjpegReader(proxy.port, "/color", timeout=20,
                            source=VIEWER_ADDRS[i % len(VIEWER_ADDRS)], rcvbuf=16384)
            stack.callback(r.close)
            readers.append(r)
        assert [r.status for r in readers] == [200] * VIEWERS
        for r in readers:  # one JPEG each; the connection stays open, unread from here
            assert r.next_part()[1][:2] == b"\xff\xd8"
        st = srv.status()
        assert st["streams"]["color"]["viewers"] == VIEWERS
        per_addr = VIEWERS // len(VIEWER_ADDRS)
        assert st["clients"] == {a: {"color": per_addr} for a in VIEWER_ADDRS}
        assert st["connections"]["refused"] == 0
    assert "refusing" not in srv.log()


def test_a_direct_flood_from_one_address_is_still_capped(proxy: Proxy) -> None:
    srv = proxy.server
    socks: list[socket.socket] = []
    try:
        for _ in range(DEFAULT_CAP + 4):
            s = socket.socket()
            socks.append(s)
            s.bind((FLOOD_ADDR, 0))
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"GET /status HTTP/1.1\r\nHost: flo")  # and then nothing
        refused = []
        for s in socks[DEFAULT_CAP:]:
            s.settimeout(5)
            refused.append(s.recv(4096))
        assert all(r.startswith(b"HTTP/1.1 503") for r in refused), refused
        # Viewers through nginx are not held up by it.
        r = MjpegReader(proxy.port, "/color", source=VIEWER_ADDRS[0])
        try:
            assert r.status == 200 and r.next_part()[1][:2] == b"\xff\xd8"
        finally:
            r.close()
    finally:
        for s in socks:
            s.close()
    assert (f"{FLOOD_ADDR} has {DEFAULT_CAP} connections open "
            f"(--max-clients-per-ip {DEFAULT_CAP}): refusing more from it") in srv.log()


def test_the_commented_limit_conn_example_is_valid(proxy: Proxy, tmp_path: Path) -> None:
    """Uncommented as the recipe says, the limit_conn example is a configuration nginx takes."""
    site = site_conf(proxy.server.port, free_port())
    lines = site.splitlines()
    examples = [i for i, line in enumerate(lines)
                if re.fullmatch(r"\s*# limit_conn\w* [^;]+;", line)]
    assert len(examples) == 3, examples
    for i in examples:
        lines[i] = lines[i].replace("# ", "", 1)
    conf = nginx_conf(tmp_path, "\n".join(lines))
    res = subprocess.run([require("nginx"), "-t", "-p", str(tmp_path), "-c", str(conf)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "limit_conn camera_per_ip 16;" in "\n".join(lines)
