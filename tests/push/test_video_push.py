"""Point-to-point push into a real `ffmpeg -listen 1` HTTPS listener, and raw TCP."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.helpers import (
    PYTHON,
    ROOT,
    STOP_DEADLINE_S,
    children_of,
    free_port,
    pid_alive,
    shm_segments,
)

W, H = 320, 240
SRC = ("--width", str(W), "--height", str(H), "--fps", "15", "--gps", "none")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate for 127.0.0.1 made with openssl."""
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "server.key", d / "server.crt"
    subprocess.run(
        [require("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return {"key": key, "crt": crt}


def start_listener(port: int, cert: dict[str, Path], out: Path, fmt: str = "mpjpeg"
                   ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [require("ffmpeg"), "-nostdin", "-loglevel", "error", "-listen", "1",
         "-key_file", str(cert["key"]), "-cert_file", str(cert["crt"]), "-f", fmt,
         "-i", f"https://127.0.0.1:{port}", "-c", "copy", "-f", "mjpeg", "-y", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_listening(port: int, listener: subprocess.Popen[bytes] | None = None,
                   timeout: float = 30.0) -> None:
    """Wait until ffmpeg's listener is bound (ss shows it; connecting would consume it).
    A listener that exits instead says why; a loaded machine may take seconds to start it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                             text=True, check=False).stdout
        if out.strip():
            return
        if listener is not None and listener.poll() is not None:
            err = listener.stderr.read().decode(errors="replace") if listener.stderr else ""
            raise RuntimeError(f"the ffmpeg listener on {port} exited with "
                               f"{listener.returncode}: {err.strip()}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout:g} s")


@contextlib.contextmanager
def client(*args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen([PYTHON, str(ROOT / "app_https_client.py"), *args],
                                cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    import os  # noqa: PLC0415

                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def probe(path: Path) -> dict:
    res = subprocess.run(
        [require("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json",
         str(path)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(res.stdout)["streams"][0]


def stop_listener(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize(("fmt", "stream", "width"), [
    ("mpjpeg", "combined", 2 * W), ("mjpeg", "color", W),
])
def test_push_lands_in_ffmpeg(cert: dict[str, Path], tmp_path: Path, fmt: str, stream: str,
                              width: int) -> None:
    port = free_port()
    out = tmp_path / "out.mjpeg"
    listener = start_listener(port, cert, out, fmt)
    try:
        wait_listening(port, listener)
        with client("-v", f"https://127.0.0.1:{port}", "--ca-file", str(cert["crt"]),
                    "--format", fmt, "--stream", stream, *SRC, log=tmp_path / "c.log") as c:
            deadline = time.monotonic() + 30  # start-up is slow on a busy machine
            while not out.exists() or out.stat().st_size == 0:
                assert time.monotonic() < deadline, (tmp_path / "c.log").read_text()
                time.sleep(0.05)
            time.sleep(3.5)
            c.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            assert c.wait(15) == 0
            # Stopped like the server: within the supervisor's stop deadline.
            assert time.monotonic() - t0 < STOP_DEADLINE_S
            kids = children_of(c.pid)
        listener.wait(10)
    finally:
        stop_listener(listener)
    st = probe(out)
    assert st["codec_name"] == "mjpeg"
    assert (st["width"], st["height"]) == (width, H)
    assert int(st["nb_read_frames"]) >= 30
    log = (tmp_path / "c.log").read_text()
    assert "connected to https://127.0.0.1" in log and "Traceback" not in log
    assert not [p for p in kids if pid_alive(p)]
    assert shm_segments(c.pid) == []


def test_stream_name_picks_one_camera_of_several(cert: dict[str, Path], tmp_path: Path
                                                 ) -> None:
    """`--stream NAME/color` pushes that camera: here a 160x120 recording beside the
    synthetic scene at 320x240; only the chosen camera is captured."""
    from tests.camera.rs_recording import make_recording  # noqa: PLC0415

    rec = make_recording(tmp_path / "small.db3", 160, 120, 15, frames=15)
    port = free_port()
    out = tmp_path / "out.mjpeg"
    listener = start_listener(port, cert, out, "mjpeg")
    try:
        wait_listening(port, listener)
        with client("-v", f"https://127.0.0.1:{port}", "--ca-file", str(cert["crt"]),
                    "--format", "mjpeg", "--source", "front=synthetic", "--source",
                    f"small={rec['path']}", "--stream", "small/color", *SRC,
                    log=tmp_path / "c.log") as c:
            deadline = time.monotonic() + 30
            while not out.exists() or out.stat().st_size < 20_000:
                assert time.monotonic() < deadline, (tmp_path / "c.log").read_text()
                time.sleep(0.05)
            c.send_signal(signal.SIGINT)
            assert c.wait(15) == 0
        listener.wait(10)
    finally:
        stop_listener(listener)
    st = probe(out)
    assert (st["codec_name"], st["width"], st["height"]) == ("mjpeg", 160, 120)
    log = (tmp_path / "c.log").read_text()
    assert "of camera small as mjpeg" in log and "capture[" not in log


def test_stream_naming_no_camera_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = subprocess.run([PYTHON, str(ROOT / "app_https_client.py"), "-v", "https://127.0.0.1:9",
                        "--source", "a=synthetic", "--stream", "b/color"],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no camera named 'b'" in lines[0], r.stderr


def test_self_signed_listener_is_refused_without_ca_file(cert: dict[str, Path],
                                                          tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "out.mjpeg"
    listener = start_listener(port, cert, out)
    try:
        wait_listening(port, listener)
        with client("-v", f"https://127.0.0.1:{port}", "-r", "0.5", "--max-retries", "0",
                    *SRC, log=tmp_path / "c.log") as c:
            assert c.wait(20) == 3
    finally:
        stop_listener(listener)
    log = (tmp_path / "c.log").read_text()
    assert "certificate not trusted" in log
    assert "giving up" in log and "Traceback" not in log


def test_client_reconnects_after_each_listener_restart(cert: dict[str, Path],
                                                       tmp_path: Path) -> None:
    port = free_port()
    retry = 1.0
    with client("-v", f"https://127.0.0.1:{port}", "--ca-file", str(cert["crt"]),
                "-r", str(retry), *SRC, log=tmp_path / "c.log"):
        # The destination is down at first: wait until the client is up and retrying
        # (start-up is slow on a busy machine), then bring listeners up one by one.
        deadline = time.monotonic() + 30
        while not all(m in (tmp_path / "c.log").read_text() for m in ("streaming", "retrying")):
            assert time.monotonic() < deadline, (tmp_path / "c.log").read_text()
            time.sleep(0.05)
        for i in range(3):
            out = tmp_path / f"out{i}.mjpeg"
            listener = start_listener(port, cert, out)
            try:
                wait_listening(port, listener)
                up = time.monotonic()
                deadline = up + retry + 1.0 + 3.0
                while (not out.exists() or out.stat().st_size < 20_000):
                    assert time.monotonic() < deadline, f"no frames after restart {i}"
                    time.sleep(0.05)
                # The first bytes must arrive within retry + 1 s (plus process start-up of
                # ffmpeg's muxer, which writes only once it has a whole frame).
                assert time.monotonic() - up < retry + 1.0 + 1.0
                time.sleep(1.0)
            finally:
                stop_listener(listener)
            assert int(probe(out)["nb_read_frames"]) >= 10
    log = (tmp_path / "c.log").read_text()
    assert log.count("connected to https://127.0.0.1") == 3
    assert "Traceback" not in log


def test_raw_tcp_push_splits_into_the_expected_jpegs(tmp_path: Path) -> None:
    from media.jpeg import JpegCodec  # noqa: PLC0415

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    received = bytearray()

    def accept() -> None:
        conn, _ = srv.accept()
        conn.settimeout(10)
        with conn:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                data = conn.recv(65536)
                if not data:
                    break
                received.extend(data)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    with client("-v", f"tcp://127.0.0.1:{port}", "--stream", "color", *SRC,
                log=tmp_path / "c.log"):
        t.join(15)
    srv.close()
    data = bytes(received)
    assert data[:2] == b"\xff\xd8"
    # Encoder output has no embedded thumbnails, and entropy data stuffs every 0xFF, so
    # EOI followed by SOI only occurs between frames.
    pieces = data[2:].split(b"\xff\xd9\xff\xd8")
    complete = [b"\xff\xd8" + p + b"\xff\xd9" for p in pieces[:-1]]
    codec = JpegCodec("turbojpeg")
    assert len(complete) >= 30
    for f in complete:
        assert codec.decode(f).shape == (H, W, 3)


@pytest.mark.parametrize("args", [
    ("-v", "ftp://127.0.0.1:21"), ("-v", "https://127.0.0.1:99999"), ("-v", "tcp://127.0.0.1"),
    ("-v", "https://127.0.0.1:8443", "-r", "soon"),
    ("-v", "https://127.0.0.1:8443", "-g", "gopher://x/"),
    ("-v", "https://127.0.0.1:8443", "--ca-file", "/nonexistent.pem"),
    ("-v", "rtmp://127.0.0.1/live/cam", "--format", "mjpeg"), ("-v", "srt://127.0.0.1:9000"),
    ("-v", "rtmp://127.0.0.1:99999/live/cam"),
    ("-v", "rtsp://127.0.0.1/cam", "--format", "mpjpeg"),
    ("-v", "https://127.0.0.1:8443", "--format", "h264", "--h264-bitrate", "10k"),
    ("-v", "https://127.0.0.1:8443", "--format", "h264", "--h264-bitrate", "90M"),
    ("-v", "https://127.0.0.1:8443", "--format", "h264", "--stream", "depth"),
    ("-v", "https://127.0.0.1:8443", "--format", "h264", "--max-bitrate", "80k"),
    ("-v", "https://127.0.0.1:8443", "--max-bitrate", "10k"),
    ("-v", "https://127.0.0.1:8443", "--max-bitrate", "fast"),
    ("-v", "https://127.0.0.1:8443", "--max-bitrate", "nan"),
    ("-v", "https://127.0.0.1:8443", "--min-quality", "95"),
    ("-v", "https://127.0.0.1:8443", "--min-width", "0"),
])
def test_bad_options_one_line_exit_2(args: tuple[str, ...]) -> None:
    res = subprocess.run([PYTHON, str(ROOT / "app_https_client.py"), *args],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_max_bitrate_caps_what_reaches_the_listener(tmp_path: Path) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    arrivals: list[tuple[float, int]] = []

    def accept() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                arrivals.append((time.monotonic(), len(data)))

    threading.Thread(target=accept, daemon=True).start()
    cap = 400_000  # bits/s; uncapped, 320x240 color at 15 fps is about 1 Mbit/s
    try:
        with client("-v", f"tcp://127.0.0.1:{srv.getsockname()[1]}", "--stream", "color",
                    "--max-bitrate", "400k", *SRC, log=tmp_path / "c.log"):
            deadline = time.monotonic() + 30
            while not arrivals:
                assert time.monotonic() < deadline, (tmp_path / "c.log").read_text()
                time.sleep(0.05)
            time.sleep(5.0)
    finally:
        srv.close()
    t0 = arrivals[0][0] + 1.0  # past the bucket's initial burst
    late = [(t, n) for t, n in arrivals if t >= t0]
    rate = sum(n for _, n in late) * 8 / (late[-1][0] - t0)
    assert 0.3 * cap < rate <= 1.1 * cap, rate


def test_credentials_never_appear_in_logs(tmp_path: Path) -> None:
    port = free_port()
    with client("-v", f"https://user:s3cret@127.0.0.1:{port}", "-r", "0.3",
                "--max-retries", "1", *SRC, log=tmp_path / "c.log") as c:
        assert c.wait(20) == 3
    log = (tmp_path / "c.log").read_text()
    assert "s3cret" not in log and "user:" not in log
    assert "https://***@127.0.0.1" in log


def test_gps_fixes_reach_the_g_url_alongside_the_video(tmp_path: Path) -> None:
    import http.server  # noqa: PLC0415

    posted: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posted.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    gps_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=gps_srv.serve_forever, daemon=True).start()
    video = socket.create_server(("127.0.0.1", 0))
    got_video = bytearray()

    def accept() -> None:
        conn, _ = video.accept()
        with conn:
            conn.settimeout(5)
            while len(got_video) < 50_000:
                data = conn.recv(65536)
                if not data:
                    break
                got_video.extend(data)

    threading.Thread(target=accept, daemon=True).start()
    try:
        with client("-v", f"tcp://127.0.0.1:{video.getsockname()[1]}",
                    "-g", f"http://127.0.0.1:{gps_srv.server_address[1]}/gps",
                    "--gps", "fixed:48.137,11.575,520", "--gps-interval", "0.3",
                    "--width", str(W), "--height", str(H), "--fps", "15",
                    log=tmp_path / "c.log"):
            deadline = time.monotonic() + 20
            while len(posted) < 3:
                assert time.monotonic() < deadline, (tmp_path / "c.log").read_text()
                time.sleep(0.1)
    finally:
        gps_srv.shutdown()
        video.close()
    assert got_video[:2] == b"\xff\xd8"
    fix = posted[0]
    assert (fix["lat"], fix["lon"], fix["alt"]) == (48.137, 11.575, 520)
    assert {"time", "speed", "track", "mode"} <= set(fix)
    assert len({p["time"] for p in posted}) == len(posted)
