"""Test helpers: start the real server as a subprocess, read its multipart streams."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import supervisor
from pipeline.child import OWN_STOP_DEADLINE_S

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (read from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def pid_alive(pid: int) -> bool:
    """True if the pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def describe_pid(pid: int) -> str:
    """A pid's state and command line, for a failure message about a process left over."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid}: gone"
    return f"{pid} [{state}]: {cmd[-80:]}"


def shm_segments(pid: int) -> list[str]:
    """Shared-memory segments owned by the server with this pid."""
    return [e for e in os.listdir("/dev/shm") if e.startswith(f"rsmjpeg-{pid}-")]


class Server:
    """app_mp.py (or another entry point) running on a free loopback port."""

    def __init__(self, *args: str, script: str = "app_mp.py", port: int | None = None,
                 log_path: Path | None = None, env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._own_log = log_path is None
        self._final_log: str | None = None
        if log_path is None:  # one file per server, even for a port started on again
            fd, name = tempfile.mkstemp(prefix=f"server-{self.port}-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        cmd = [PYTHON, str(ROOT / script), "--host", "127.0.0.1", "--port", str(self.port),
               *args]
        # preexec_fn (e.g. a setrlimit) runs in the forked child before exec
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, preexec_fn=preexec_fn)  # noqa: PLW1509
        self.pid = self.proc.pid
        self.child_pids: list[int] = []
        self.started = time.monotonic()
        self.ready_s: float | None = None
        """Seconds from the start to ready: this machine's time, now, to start a process."""

    def log(self) -> str:
        if self._final_log is not None:
            return self._final_log
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0, need_frames: bool = True) -> dict[str, Any]:
        """Poll /status until it answers (and frames are being captured)."""
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                code, _, body = self.get("/status", timeout=3)
                if code == 401:  # access-controlled: /healthz is open and tells liveness
                    code, _, body = self.get("/healthz", timeout=3)
                    if code == 200:
                        self.child_pids = children_of(self.pid)
                        self.ready_s = time.monotonic() - self.started
                        return json.loads(body)
                    time.sleep(0.2)
                    continue
                st = json.loads(body)
                if not need_frames or st["frames_captured"] > 0:
                    self.child_pids = children_of(self.pid)
                    self.ready_s = time.monotonic() - self.started
                    return st
            except (OSError, ValueError, http.client.HTTPException) as exc:
                last_exc = exc
            time.sleep(0.2)
        raise TimeoutError(f"server not ready: {last_exc}\n{self.log()}")

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, _, body = self.get("/status", timeout=3)
        if code != 200:
            raise ValueError(f"/status answered {code}")
        return json.loads(body)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send a signal to the server (only its main process) and wait for it to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Last resort: kill the whole process group and close the log."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for pid in self.child_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()
        if self._own_log and self._final_log is None:
            # Its log outlives the file for the test that still reads it; /tmp keeps nothing.
            self._final_log = self.log_path.read_text(errors="replace")
            self.log_path.unlink(missing_ok=True)


    def restart_deadline(self) -> float:
        """Seconds a killed child may take to be back: the supervisor's first backoff and
        its loop's tick, then a start as long as this server's own start took (that
        start spawned every child at once, so one child's start fits in it twice over)."""
        assert self.ready_s is not None, "restart_deadline() needs a server waited ready"
        return supervisor.BACKOFF_FIRST_S + supervisor.TICK_S + 2 * self.ready_s

    def orphan_deadline(self) -> float:
        """Seconds the children may outlive a killed supervisor: the deadline each arms
        with the kernel at its stop request, plus, for the parent-death signal to reach a
        handler on a loaded machine, as long as this server's own start took."""
        assert self.ready_s is not None, "orphan_deadline() needs a server waited ready"
        return OWN_STOP_DEADLINE_S + self.ready_s

    def mark(self, st: dict[str, Any] | None = None) -> Mark:
        """Where capture and encoding stand now: the start of a measuring window.
        `st`: a /status answer just read (for a server that needs credentials)."""
        st = st or self.status()
        return Mark(time.monotonic(), st["frames_captured"],
                    {k: v["frames_encoded"] for k, v in st["streams"].items()})

    def rates(self, since: Mark, st: dict[str, Any] | None = None) -> Rates:
        """Frames per second captured (and encoded, per stream) since `since`, as the
        server counted them: the reference a client's rate over the same window is
        judged against."""
        st = st or self.status()
        seconds = time.monotonic() - since.t
        return Rates(seconds, (st["frames_captured"] - since.captured) / seconds,
                     {k: (v["frames_encoded"] - since.encoded.get(k, 0)) / seconds
                      for k, v in st["streams"].items()})

    def latency_bound(self, stream: str = "color", intervals: float = 2.0,
                      fps: float | None = None) -> float:
        """Seconds a frame may take from capture to a client: `intervals` frame intervals
        at the rate the server captures now (or at `fps`), plus the encode time it
        measures."""
        st = self.status()
        fps = fps or st["fps_captured"]
        assert fps > 0, st
        return intervals / fps + st["streams"][stream]["encode_ms"] / 1000.0


@dataclass
class Mark:
    """Counters at the start of a measuring window (Server.mark)."""

    t: float
    captured: int
    encoded: dict[str, int]


@dataclass
class Rates:
    """Rates over a measuring window (Server.rates)."""

    seconds: float
    captured: float
    encoded: dict[str, float]


STOP_DEADLINE_S = supervisor.TERM_WAIT_S + supervisor.KILL_WAIT_S
"""A clean stop is over before the supervisor would have finished killing a child that
did not stop: its children stop within TERM_WAIT_S (the log says when one did not)."""
STOP_ESCALATED = "did not stop in"
"""What the supervisor logs when a child had to be killed at a stop."""

RATE_SHARE = 0.9
"""A client must receive at least this share of the frames the server produced for it
(encoded, for MJPEG) over the same window."""


@contextlib.contextmanager
def running(*args: str, ready: bool = True, need_frames: bool = True,
            **kw: Any) -> Iterator[Server]:
    """A started server, killed (group-wide) afterwards whatever happens."""
    srv = Server(*args, **kw)
    try:
        if ready:
            srv.wait_ready(need_frames=need_frames)
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.stop(signal.SIGTERM)
        srv.kill()


class _Connection(http.client.HTTPConnection):
    """http.client's connection from a chosen source address, with a chosen receive
    buffer (set before connecting, so a client that stops reading holds little)."""

    def __init__(self, host: str, port: int, timeout: float, source: str | None,
                 rcvbuf: int | None) -> None:
        super().__init__(host, port, timeout=timeout,
                         source_address=(source, 0) if source else None)
        self.rcvbuf = rcvbuf

    def connect(self) -> None:
        if not self.rcvbuf:
            super().connect()
            return
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            if self.source_address:
                sock.bind(self.source_address)
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class MjpegReader:
    """Reads multipart/x-mixed-replace parts (headers + JPEG) from one open connection
    (optionally from `source`, with extra request `headers` and a small `rcvbuf`)."""

    def __init__(self, port: int, path: str, timeout: float = 10.0, host: str = "127.0.0.1",
                 *, source: str | None = None, headers: dict[str, str] | None = None,
                 rcvbuf: int | None = None):
        self.conn = _Connection(host, port, timeout, source, rcvbuf)
        self.conn.request("GET", path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        ctype = self.headers.get("content-type", "")
        self.boundary = ctype.split("boundary=", 1)[1].strip() if "boundary=" in ctype else ""

    def _line(self) -> bytes:
        line = self.resp.readline(1024)
        if not line:
            raise EOFError("stream closed")
        return line

    def next_part(self) -> tuple[dict[str, str], bytes]:
        """The next part's headers (lower-case) and body."""
        line = self._line()
        while line.strip() != f"--{self.boundary}".encode():
            line = self._line()
        headers: dict[str, str] = {}
        while True:
            line = self._line().strip()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = self.resp.read(int(headers["content-length"]))
        return headers, body

    def close(self) -> None:
        """Close the socket (a close-delimited response owns it, not the connection)."""
        self.resp.close()
        self.conn.close()


class Watcher(threading.Thread):
    """One streaming client recording (arrival time, capture timestamp) of every part."""

    def __init__(self, port: int, path: str = "/color") -> None:
        super().__init__(daemon=True)
        self.reader = MjpegReader(port, path, timeout=10)
        self.parts: list[tuple[float, float]] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                headers, _ = self.reader.next_part()
                self.parts.append((time.time(), float(headers["x-timestamp"])))
        except BaseException as exc:  # noqa: BLE001  (recorded for the test to assert on)
            if not self.stop.is_set():
                self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.reader.close()
        self.join(5)

    def resumed_after(self, t: float) -> float | None:
        """Seconds from t until the first part captured after t arrived, or None."""
        for arrived, captured in self.parts:
            if captured > t:
                return arrived - t
        return None


def run_cli(*args: str, timeout: float = 30,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """app_mp.py run to its end (bad options, --help): its exit code and output."""
    return subprocess.run([PYTHON, str(ROOT / "app_mp.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def colourfulness(img: np.ndarray) -> float:
    """Mean distance of blue and green from red: ~0 for a grey picture."""
    i = img.astype(np.int16)
    return float(np.abs(i[..., 0] - i[..., 2]).mean() + np.abs(i[..., 1] - i[..., 2]).mean())


def post_filters(srv: Server, payload: object) -> tuple[int, dict[str, Any]]:
    """POST /filters with a JSON body: the status and the JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", "/filters", body=json.dumps(payload),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()
