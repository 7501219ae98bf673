"""Access control, TLS, limits, CORS, /metrics and /healthz on the real server."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import require
from tests.helpers import MjpegReader, Server, run_cli, running

SMALL = ("--width", "640", "--height", "480")


def get(port: int, path: str, headers: dict[str, str] | None = None,
        conn_cls: type = http.client.HTTPConnection, **kw: object) -> tuple[int, dict, bytes]:
    conn = conn_cls("127.0.0.1", port, timeout=10, **kw)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        status, hdrs = r.status, {k.lower(): v for k, v in r.getheaders()}
        body = r.read(2000) if "multipart" in hdrs.get("content-type", "") else r.read()
        return status, hdrs, body
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_protects_every_route_but_healthz() -> None:
    with running(*SMALL, "--auth", "alice:wonder land") as srv:
        for path in ("/", "/color", "/depth.jpg", "/status", "/metrics", "/nope"):
            code, headers, _ = get(srv.port, path)
            assert code == 401, path
            assert headers["www-authenticate"].startswith("Basic")
            assert get(srv.port, path, basic("alice", "wrong"))[0] == 401
            assert get(srv.port, path, basic("bob", "wonder land"))[0] == 401
        for path in ("/", "/color", "/status", "/metrics"):
            assert get(srv.port, path, basic("alice", "wonder land"))[0] == 200, path
        assert get(srv.port, "/healthz")[0] == 200


def test_auth_file_with_hashed_passwords(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"# viewers\ncarol:{generate_password_hash('pa:ss')}\n")
    with running(*SMALL, "--auth-file", str(users)) as srv:
        assert get(srv.port, "/status")[0] == 401
        assert get(srv.port, "/status", basic("carol", "pa:ss"))[0] == 200
        assert get(srv.port, "/status", basic("carol", "pa:sS"))[0] == 401
        assert get(srv.port, "/color", basic("carol", "pa:ss"))[0] == 200


def test_token_in_query_or_bearer_header_and_page_passes_it_on() -> None:
    token = "t0k3n-for-img-tags"
    with running(*SMALL, "--token", token) as srv:
        assert get(srv.port, "/color")[0] == 401
        assert get(srv.port, "/color?token=nope")[0] == 401
        assert get(srv.port, f"/color?token={token}")[0] == 200
        assert get(srv.port, "/status", {"Authorization": f"Bearer {token}"})[0] == 200
        code, _, page = get(srv.port, f"/?token={token}")
        assert code == 200
        assert f'src="color?token={token}"'.encode() in page
        r = MjpegReader(srv.port, f"/depth?token={token}")
        try:
            assert r.next_part()[1][:2] == b"\xff\xd8"
        finally:
            r.close()


@pytest.mark.parametrize("args", [
    ("--auth", "nopassword"), ("--token", "short"), ("--auth-file", "/nonexistent"),
    ("--cert", "/nonexistent.pem"), ("--max-clients", "0"),
])
def test_bad_security_options_exit_2(args: tuple[str, ...]) -> None:

    res = run_cli(*args)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1


def test_https_with_cert_and_key(tmp_path: Path) -> None:
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run([require("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with running(*SMALL, "--cert", str(crt), "--key", str(key), "--send-timeout", "2",
                 ready=False) as srv:
        ctx = ssl.create_default_context(cafile=str(crt))
        deadline = time.monotonic() + 30
        while True:
            try:
                code, headers, body = get(srv.port, "/color.jpg",
                                          conn_cls=http.client.HTTPSConnection, context=ctx)
                break
            except (ConnectionRefusedError, ssl.SSLError, ConnectionResetError):
                assert time.monotonic() < deadline
                time.sleep(0.3)
        assert code == 200 and body[:2] == b"\xff\xd8"
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            get(srv.port, "/status")  # plain HTTP on the TLS port gets nothing useful
        out = subprocess.run(
            [require("ffprobe"), "-v", "error", "-f", "mpjpeg", "-count_frames",
             "-read_intervals", "%+#10", "-show_entries", "stream=nb_read_frames",
             "-of", "csv=p=0", f"https://127.0.0.1:{srv.port}/color"],
            capture_output=True, text=True, timeout=30, check=True)
        assert out.stdout.strip() == "10"
        _tls_client_that_stops_reading_is_dropped(srv.port, ctx)


def _tls_client_that_stops_reading_is_dropped(port: int, ctx: ssl.SSLContext) -> None:
    """Over TLS every client has its own writer; --send-timeout bounds it too."""

    def viewers() -> int:
        code, _, body = get(port, "/status", conn_cls=http.client.HTTPSConnection,
                            context=ctx)
        assert code == 200
        return json.loads(body)["streams"]["color"]["viewers"]

    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    stalled = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        stalled.sendall(b"GET /color HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 10
        while viewers() < 1:
            assert time.monotonic() < deadline, "the stalled client never became a viewer"
            time.sleep(0.1)
        deadline = time.monotonic() + 20  # 2 s of send timeout once the buffers are full
        while viewers() > 0:
            assert time.monotonic() < deadline, "a TLS client that reads nothing was kept"
            time.sleep(0.2)
    finally:
        stalled.close()


def test_max_clients_answers_503_with_retry_after_and_keeps_the_others() -> None:
    with running(*SMALL, "--max-clients", "3") as srv:
        readers = [MjpegReader(srv.port, "/color") for _ in range(3)]
        try:
            for r in readers:
                r.next_part()
            code, headers, body = get(srv.port, "/depth")
            assert code == 503
            assert headers["retry-after"] == "5"
            assert b"too many clients" in body
            for r in readers:
                r.next_part()
        finally:
            for r in readers:
                r.close()
        deadline = time.monotonic() + 5
        while srv.status()["viewers"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert get(srv.port, "/depth")[0] == 200


@pytest.fixture(scope="module")
def plain() -> Iterator[Server]:
    """A server with no security options, shared by the tests that only read from it."""
    with running(*SMALL) as srv:
        yield srv


def test_cors_is_off_by_default_and_on_when_asked(plain: Server) -> None:
    with running(*SMALL, "--allow-origin", "https://dash.example") as srv:
        _, headers, _ = get(srv.port, "/status")
        assert headers["access-control-allow-origin"] == "https://dash.example"
    _, headers, _ = get(plain.port, "/status")
    assert "access-control-allow-origin" not in headers


def test_fps_limit_caps_every_client() -> None:
    with running(*SMALL, "--fps-limit", "5") as srv:
        r = MjpegReader(srv.port, "/color?fps=20")
        try:
            r.next_part()
            arrivals = [time.monotonic()]
            for _ in range(10):
                r.next_part()
                arrivals.append(time.monotonic())
        finally:
            r.close()
    # Never faster than the limit (the median gap: one part held up on a loaded machine
    # shortens the gap after it).
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert gaps[len(gaps) // 2] >= 0.2 * 0.95, gaps


def test_metrics_and_healthz(plain: Server) -> None:
    # The shared server's counters only grow: each check below is a lower bound.
    srv = plain
    r = MjpegReader(srv.port, "/color")
    try:
        for _ in range(10):
            r.next_part()
        code, headers, body = get(srv.port, "/metrics")
    finally:
        r.close()
    assert code == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("camera_frames_captured", "camera_frames_encoded", "camera_parts_sent",
                 "camera_viewers", "camera_latency_seconds", "camera_process_restarts"):
        assert name in fams, name
    sent = {s.labels.get("stream"): s.value for s in fams["camera_parts_sent"].samples
            if s.name == "camera_parts_sent_total"}
    assert sent["color"] >= 9
    count = [s.value for s in fams["camera_latency_seconds"].samples
             if s.name == "camera_latency_seconds_count" and s.labels["stream"] == "color"]
    assert count[0] >= 9
    code, _, body = get(srv.port, "/healthz")
    assert code == 200 and b'"ok":true' in body


def test_open_server_on_all_interfaces_warns_once(plain: Server) -> None:
    with running(*SMALL, "--host", "0.0.0.0") as srv:
        assert get(srv.port, "/status")[0] == 200
        assert srv.log().count("anyone who can reach this port can watch") == 1
    assert "anyone who can reach" not in plain.log()


def test_no_credential_reaches_the_log_even_at_debug_level() -> None:
    """Every request line is logged at debug level; the token in it is not, whichever way
    it comes (a right or wrong token, a stream, the page, a request gevent rejects)."""
    token, wrong = "S3CRET-0f-the-camera", "WR0NG-but-private"
    with running(*SMALL, "--log-level", "debug", "--token", token) as srv:
        assert get(srv.port, f"/color.jpg?token={token}")[0] == 200
        assert get(srv.port, f"/status?fps=1&token={token}")[0] == 400  # unknown fps
        assert get(srv.port, f"/?token={token}")[0] == 200
        assert get(srv.port, f"/depth.jpg?token={wrong}")[0] == 401
        assert get(srv.port, f"/status?access_token={wrong}")[0] == 401
        r = MjpegReader(srv.port, f"/color?token={token}", headers={
            "X-Forwarded-For": "198.51.100.7"})
        try:
            assert r.next_part()[1][:2] == b"\xff\xd8"
        finally:
            r.close()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(f"GET /color?token={token} HTTP/1.1 junk\r\n\r\n".encode())
            assert s.recv(100).startswith(b"HTTP/1.1 400")
        deadline = time.monotonic() + 10
        want = ['127.0.0.1 "GET /color.jpg?token=*** HTTP/1.1" 200',
                '127.0.0.1 "GET /depth.jpg?token=*** HTTP/1.1" 401',
                '127.0.0.1 "GET /status?access_token=*** HTTP/1.1" 401',
                '198.51.100.7 via 127.0.0.1 "GET /color?token=*** HTTP/1.1" 200',
                "Invalid HTTP method: 'GET /color?token=*** HTTP/1.1 junk"]
        while not all(w in srv.log() for w in want):
            assert time.monotonic() < deadline, [w for w in want if w not in srv.log()]
            time.sleep(0.1)
    lines = srv.log().splitlines()
    assert len(lines) > 10
    assert [line for line in lines if token in line or wrong in line] == []
