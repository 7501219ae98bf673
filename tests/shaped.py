"""A real thin link for push tests: two network namespaces, a veth pair, tbf on the sender.

The pusher runs in namespace A, the receiver (ffmpeg -listen 1) in namespace B; A's end
of the veth is shaped with `tc qdisc ... tbf` (this kernel has no netem). Both sides
share the clock, so latency is arrival time minus the capture time the frame carries.
Everything made here is removed on exit, even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import PYTHON, ROOT

PREFIX = "push"


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    probe = f"{PREFIX}probe{os.getpid() % 100000}"
    steps = (
        (["ip", "netns", "add", probe], "cannot create a network namespace"),
        (["ip", "-n", probe, "link", "add", "pv0", "type", "veth", "peer", "name", "pv1"],
         "cannot create a veth pair"),
        (["tc", "-n", probe, "qdisc", "add", "dev", "pv0", "root", "tbf", "rate", "1mbit",
          "burst", "32kbit", "latency", "100ms"], "cannot add a tbf qdisc"),
    )
    try:
        for argv, what in steps:
            res = subprocess.run(argv, capture_output=True, text=True, check=False,
                                 timeout=10)
            if res.returncode != 0:
                return f"{what}: {res.stderr.strip()}"
        return None
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False,
                       timeout=10)


def require_namespaces() -> None:
    """Fail the test when namespaces, veth and tbf are not there: make setup (as root, on
    the Debian it supports) provides them, so their absence is a broken set-up."""
    why = namespaces_unavailable()
    if why is not None:
        pytest.fail(f"shaped-link test: {why} (make setup installs iproute2; run as root)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class ShapedLink:
    """Namespaces `<name>a` (sender) and `<name>b` (receiver) joined by a shaped veth."""

    def __init__(self, rate_mbit: float, tag: str = "") -> None:
        n = os.getpid() % 100000
        self.name = f"{PREFIX}{tag}{n}"
        self.a, self.b = f"{self.name}a", f"{self.name}b"
        net = 100 + n % 150
        self.addr_a, self.addr_b = f"10.{net}.{n % 250}.1", f"10.{net}.{n % 250}.2"
        self.rate_mbit = rate_mbit
        self._made: list[str] = []

    def __enter__(self) -> ShapedLink:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        for ns in (self.a, self.b):
            # A run killed outright (SIGKILL) with the same pid may have left this name.
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False,
                           timeout=10)
            _ip("netns", "add", ns)
            self._made.append(ns)
        va, vb = f"{self.name}x", f"{self.name}y"
        _ip("link", "add", va, "netns", self.a, "type", "veth", "peer", "name", vb,
            "netns", self.b)
        for ns, dev, addr in ((self.a, va, self.addr_a), (self.b, vb, self.addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "mtu", "1500", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        self.dev = va
        self._tc("add")

    def _tc(self, verb: str) -> None:
        # A burst of 32 kbit at least (smaller stalls TCP); a queue of ~100 ms at the rate.
        subprocess.run(["tc", "-n", self.a, "qdisc", verb, "dev", self.dev, "root", "tbf",
                        "rate", f"{self.rate_mbit}mbit", "burst", "32kbit",
                        "latency", "100ms"], check=True, capture_output=True, timeout=10)

    def set_rate(self, rate_mbit: float) -> None:
        """Change the shaped rate while traffic flows; 0 removes the shaping (a free link)."""
        if rate_mbit == 0:
            if self.rate_mbit:
                subprocess.run(["tc", "-n", self.a, "qdisc", "del", "dev", self.dev, "root"],
                               check=True, capture_output=True, timeout=10)
        else:
            verb = "change" if self.rate_mbit else "add"
            self.rate_mbit = rate_mbit
            self._tc(verb)
        self.rate_mbit = rate_mbit

    def cmd(self, ns: str, *argv: str) -> list[str]:
        """argv run inside namespace `ns`."""
        return ["ip", "netns", "exec", ns, *argv]

    def close(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False,
                           timeout=10)
        self._made.clear()


def wait_ffmpeg_listening(proc: subprocess.Popen[bytes], port: int, log_path: Path,
                          link: ShapedLink | None, timeout: float = 10.0) -> None:
    """Until an `ffmpeg -listen` receiver listens on `port` (inside `link`'s receiving
    side, if any), or has already taken the sender's connection: it accepts one and
    closes its listening socket, which a sender retrying fast can beat us to."""
    argv = ["ss", "-Htn", "state", "listening", "state", "established", f"sport = :{port}"]
    if link is not None:
        argv = link.cmd(link.b, *argv)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"ffmpeg is not listening: {log_path.read_text()}")


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT,
               timeout: float = 10.0) -> None:
    """Stop a process started in its own session: `sig` first, SIGKILL to the group after."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@dataclass
class Arrival:
    """One JPEG as the receiver wrote it out: when, and what its COM segment says."""

    t: float
    ts_capture: float
    width: int
    quality: int
    nbytes: int

    @property
    def latency(self) -> float:
        return self.t - self.ts_capture


def _jpeg_end(buf: bytes | bytearray, start: int) -> int:
    """Index just past the EOI of the JPEG at `start`, or -1 while it is incomplete."""
    i = start + 2
    n = len(buf)
    while i + 4 <= n:  # marker segments up to SOS carry lengths
        if buf[i] != 0xFF:
            return -2
        marker = buf[i + 1]
        seglen = int.from_bytes(buf[i + 2:i + 4], "big")
        i += 2 + seglen
        if marker == 0xDA:
            break
    else:
        return -1
    while True:  # entropy-coded data: 0xFF is stuffed (FF00) or a restart marker
        j = buf.find(b"\xff", i)
        if j < 0 or j + 1 >= n:
            return -1
        nxt = buf[j + 1]
        if nxt == 0xD9:
            return j + 2
        i = j + 2


def _com(jpeg: bytes) -> dict[str, str]:
    """Fields of the push's COM segment (X-Timestamp, X-Resolution, X-Quality)."""
    i = jpeg.find(b"\xff\xfe", 2, 64)
    if i < 0:
        return {}
    n = int.from_bytes(jpeg[i + 2:i + 4], "big")
    text = jpeg[i + 4:i + 2 + n].decode("ascii", "replace")
    return dict(p.strip().split(": ", 1) for p in text.split(";") if ": " in p)


@dataclass
class FfmpegReceiver:
    """`ffmpeg -listen 1` in the receiving namespace, copying the stream to its stdout."""

    link: ShapedLink
    port: int
    log_path: Path
    arrivals: list[Arrival] = field(default_factory=list)

    def __enter__(self) -> FfmpegReceiver:
        self._err = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.link.cmd(self.link.b, shutil.which("ffmpeg") or "ffmpeg", "-nostdin",
                          "-loglevel", "error", "-fflags", "nobuffer", "-probesize", "32",
                          "-analyzeduration", "0", "-listen", "1", "-f", "mpjpeg",
                          "-i", f"http://{self.link.addr_b}:{self.port}", "-c", "copy",
                          "-f", "mjpeg", "-flush_packets", "1", "pipe:1"),
            stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_ffmpeg_listening(self.proc, self.port, self.log_path, self.link)
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        buf = bytearray()
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                return
            now = time.time()
            buf += data
            while True:
                start = buf.find(b"\xff\xd8")
                if start < 0:
                    buf.clear()
                    break
                end = _jpeg_end(buf, start)
                if end == -1:
                    del buf[:start]
                    break
                if end == -2:
                    del buf[:start + 2]
                    continue
                jpeg = bytes(buf[start:end])
                del buf[:end]
                com = _com(jpeg)
                if "X-Timestamp" not in com:
                    continue
                self.arrivals.append(Arrival(
                    t=now, ts_capture=float(com["X-Timestamp"]),
                    width=int(com.get("X-Resolution", "0x0").split("x")[0]),
                    quality=int(com.get("X-Quality", "0")), nbytes=len(jpeg)))

    def __exit__(self, *exc: object) -> None:
        kill_group(self.proc, signal.SIGTERM, 5)
        self._thread.join(5)
        self._err.close()

    def window(self, t0: float, t1: float) -> list[Arrival]:
        """Frames that arrived between two time.time() instants."""
        return [a for a in list(self.arrivals) if t0 <= a.t < t1]


def summary(frames: list[Arrival], seconds: float) -> dict[str, float]:
    """fps, latency p50/p99 (ms), typical width and quality of a run's frames."""
    if not frames:
        return {"fps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "width": 0,
                "quality": 0, "kbytes": 0.0}
    lat = sorted(a.latency * 1000 for a in frames)
    return {
        "fps": len(frames) / seconds,
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "width": statistics.median_low([a.width for a in frames]),
        "quality": statistics.median_low([a.quality for a in frames]),
        "kbytes": statistics.mean(a.nbytes for a in frames) / 1000,
    }


@contextlib.contextmanager
def pusher(link: ShapedLink, port: int, log_path: Path, *args: str
           ) -> Iterator[subprocess.Popen[bytes]]:
    """app_https_client.py in the sending namespace, pushing to the receiver's address."""
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(
            link.cmd(link.a, PYTHON, str(ROOT / "app_https_client.py"),
                     "-v", f"http://{link.addr_b}:{port}", *args),
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        kill_group(proc)


TS_PACKET = 188
PTS_WRAP = (1 << 33) / 90_000


def _pes_pts(pes: bytes) -> float | None:
    """The PTS (seconds, modulo 2**33 ticks) of a PES packet's header, if it has one."""
    if len(pes) < 14 or pes[:3] != b"\x00\x00\x01" or not pes[7] & 0x80:
        return None
    p = pes[9:14]
    ticks = ((p[0] >> 1) & 7) << 30 | p[1] << 22 | (p[2] >> 1) << 15 | p[3] << 7 | p[4] >> 1
    return ticks / 90_000


def capture_time(pts: float, now: float) -> float:
    """A PTS carrying capture time modulo 2**33 ticks, unwrapped to the epoch nearest `now`."""
    base = now - now % PTS_WRAP
    return min((base - PTS_WRAP + pts, base + pts, base + PTS_WRAP + pts),
               key=lambda c: abs(c - now))


@dataclass
class TsReceiver:
    """`ffmpeg -listen 1 -f mpegts` in the receiving namespace, copying the TS out.

    The copy keeps the sender's timestamps (-copyts), so each access unit's PTS is its
    capture time; every byte is also kept in `path` for ffprobe.
    """

    link: ShapedLink | None
    port: int
    log_path: Path
    path: Path
    host: str = "127.0.0.1"
    scheme: str = "http"
    all_streams: bool = False  # -map 0: keep the depth video beside colour
    arrivals: list[Arrival] = field(default_factory=list)
    depth_arrivals: list[Arrival] = field(default_factory=list)

    def __enter__(self) -> TsReceiver:
        self._err = open(self.log_path, "wb")  # noqa: SIM115
        self._out = open(self.path, "wb")  # noqa: SIM115
        host = self.link.addr_b if self.link is not None else self.host
        argv = [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-loglevel", "error",
                "-fflags", "nobuffer", "-probesize", "32", "-analyzeduration", "0",
                "-listen", "1", "-f", "mpegts", "-i", f"{self.scheme}://{host}:{self.port}",
                *(("-map", "0") if self.all_streams else ()),
                "-c", "copy", "-copyts", "-muxdelay", "0", "-muxpreload", "0",
                "-f", "mpegts", "-flush_packets", "1", "pipe:1"]
        if self.link is not None:
            argv = self.link.cmd(self.link.b, *argv)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._err,
                                     start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_ffmpeg_listening(self.proc, self.port, self.log_path, self.link)
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        pes: dict[int, bytearray] = {}
        # ffmpeg's TS muxer numbers the streams' PIDs from 0x100 in order (colour, depth)
        # and gives every video PES stream id 0xE0.
        kind = {0x100: self.arrivals, 0x101: self.depth_arrivals}
        last: dict[int, float] = {}
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                return
            now = time.time()
            self._out.write(data)
            buf += data
            while len(buf) >= TS_PACKET:
                if buf[0] != 0x47:
                    i = buf.find(b"\x47")
                    del buf[:i if i > 0 else len(buf)]
                    continue
                pkt = bytes(buf[:TS_PACKET])
                del buf[:TS_PACKET]
                pid = (pkt[1] & 0x1F) << 8 | pkt[2]
                start = bool(pkt[1] & 0x40)
                off = 4 + (1 + pkt[4] if pkt[3] & 0x20 else 0)
                if not pkt[3] & 0x10 or off >= TS_PACKET:
                    continue
                payload = pkt[off:]
                if pid not in kind:
                    continue
                if start:
                    self._unit(kind[pid], pes.get(pid, bytearray()), last.get(pid, 0.0))
                    pes[pid] = bytearray()
                pes.setdefault(pid, bytearray()).extend(payload)
                last[pid] = now  # when the unit's latest byte arrived

    def _unit(self, into: list[Arrival], pes: bytearray, now: float) -> None:
        pts = _pes_pts(bytes(pes))
        if pts is None:
            return
        into.append(Arrival(t=now, ts_capture=capture_time(pts, now), width=0,
                                     quality=0, nbytes=len(pes)))

    def __exit__(self, *exc: object) -> None:
        kill_group(self.proc, signal.SIGTERM, 5)
        self._thread.join(5)
        self._err.close()
        self._out.close()

    def window(self, t0: float, t1: float, depth: bool = False) -> list[Arrival]:
        """Access units (of colour, or of the depth video) that arrived between two
        time.time() instants."""
        return [a for a in list(self.depth_arrivals if depth else self.arrivals)
                if t0 <= a.t < t1]


def probe_frames(path: Path, seconds: float | None = None) -> list[dict[str, str]]:
    """Frames ffprobe decodes from a file: pts_time, key_frame, width, height."""
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
            "frame=pts_time,key_frame,width,height", "-of", "compact=p=0:nk=0"]
    if seconds is not None:
        argv += ["-read_intervals", f"%+{seconds}"]
    out = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=False,
                         timeout=120).stdout
    return [dict(kv.split("=", 1) for kv in line.split("|") if "=" in kv)
            for line in out.splitlines() if line.strip()]
