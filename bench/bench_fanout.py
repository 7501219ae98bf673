"""The web process's fan-out against its floor, measured in the same run.

The floor is the least any Python fan-out can do: one asyncio process that writes one
prebuilt multipart part (a real JPEG from our server, with a fresh X-Timestamp each
frame) to N sockets at the frame rate, skipping a socket that has not drained the
previous part (newest frame wins), with no capture, no encoding and no framework.
The load is one asyncio process reading N streams, skipping bodies by Content-Length
and measuring per-client fps and latency (receive time minus X-Timestamp).

For each client count, the real server (app_mp.py, synthetic source) and the floor run
in turn under the same load; the CPU of the web process and of the floor process are
read from /proc over the same measured window. Medians of several runs, as Markdown.

    .venv/bin/python bench/bench_fanout.py --clients 100 300 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BodySkipper  # noqa: E402

log = logging.getLogger("bench")
CLK = os.sysconf("SC_CLK_TCK")
BOUNDARY = b"frame"


# ---- the floor: one loop, one prebuilt part, N sockets --------------------------------

async def floor_server(port: int, jpeg: bytes, fps: float) -> None:
    """Serve /anything as an endless multipart stream of the same JPEG."""
    clients: set[asyncio.WriteTransport] = set()
    response_head = (b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; "
                     b"boundary=frame\r\nConnection: close\r\n\r\n")

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        writer.write(response_head)
        clients.add(writer.transport)  # type: ignore[arg-type]
        try:
            await reader.read()  # until the client goes
        except OSError:
            pass
        clients.discard(writer.transport)  # type: ignore[arg-type]
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", port, backlog=1024)
    period = 1.0 / fps
    next_t = time.monotonic()
    frame = 0
    async with server:
        while True:
            next_t += period
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            frame += 1
            part = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n"
                    b"X-Timestamp: %.6f\r\nX-Frame: %d\r\n\r\n"
                    % (len(jpeg), time.time(), frame)) + jpeg + b"\r\n"
            for t in list(clients):
                if t.is_closing():
                    clients.discard(t)
                elif t.get_write_buffer_size() == 0:
                    t.write(part)


# ---- the load: one asyncio process reading N streams ----------------------------------

class Reader(asyncio.BufferedProtocol, BodySkipper):
    """Parses part headers, skips bodies by Content-Length, records arrival times."""

    def __init__(self, path: str, t_measure: float) -> None:
        self.path = path
        self.t_measure = t_measure
        self.buf = bytearray(1 << 20)
        self.head = bytearray()
        self.skip = 0
        self.got_response = False
        self.frames: list[float] = []
        self.latency: list[float] = []
        self.arrivals: list[tuple[int, float]] = []  # (X-Frame, receive time)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        now = time.time()
        view = memoryview(self.buf)[:nbytes]
        while view:
            if self.skip:
                view = self.skipped(view)
                continue
            chunk = bytes(view[:4096])  # a part's headers are small: never copy a body
            self.head += chunk
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    raise RuntimeError("no part header found")
                view = view[len(chunk):]
                continue
            view = view[len(chunk) - (len(self.head) - end - 4):]
            head = bytes(self.head[:end])
            self.head.clear()
            if not self.got_response:
                self.got_response = True
                continue
            length = ts = frame_no = None
            for line in head.split(b"\r\n"):
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"x-timestamp":
                    ts = float(v)
                elif k == b"x-frame":
                    frame_no = int(v)
            if length is None or ts is None:
                raise RuntimeError(f"bad part header {head[:200]!r}")
            if now >= self.t_measure:
                self.frames.append(now)
                self.latency.append(now - ts)
                if frame_no is not None:
                    self.arrivals.append((frame_no, now))
            self.skip = length + 2

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def load(port: int, path: str, n: int, warmup: float, seconds: float) -> dict:
    """Read n streams; per-client fps and pooled latency over the measured window."""
    loop = asyncio.get_running_loop()
    t_measure = time.time() + warmup
    readers = []
    transports = []
    for _ in range(n):
        t, r = await loop.create_connection(lambda: Reader(path, t_measure), "127.0.0.1", port)
        readers.append(r)
        transports.append(t)
    await asyncio.sleep(warmup + seconds)
    for t in transports:
        t.close()
    fps = sorted((len(r.frames) - 1) / (r.frames[-1] - r.frames[0])
                 if len(r.frames) > 1 and r.frames[-1] > r.frames[0] else 0.0 for r in readers)
    lat = sorted(x for r in readers for x in r.latency)
    # The fan-out's own delay: how long after the first client each client got a frame
    # (the capture and encoding before the web process are common to all and drop out).
    first: dict[int, float] = {}
    for r in readers:
        for f, t in r.arrivals:
            first[f] = min(t, first.get(f, t))
    spread = sorted(t - first[f] for r in readers for f, t in r.arrivals)
    return {
        "spread_p50_ms": spread[len(spread) // 2] * 1000 if spread else None,
        "spread_p99_ms": spread[int(len(spread) * 0.99)] * 1000 if spread else None,
        "fps_min": fps[0], "fps_median": statistics.median(fps),
        "lat_p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "lat_p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
    }


# ---- orchestration ---------------------------------------------------------------------

def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def http_get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read()


def wait_for(port: int, path: str, proc: subprocess.Popen) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        try:
            return http_get(port, path)
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server on {port} did not start") from None
            time.sleep(0.2)


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"floor on {port} did not start") from None
            time.sleep(0.1)


def measure(port: int, pid: int, args: argparse.Namespace, n: int) -> dict:
    """Run the load process against a started server; CPU of `pid` over the window."""
    cmd = [sys.executable, __file__, "load", "--port", str(port), "--path", args.path,
           "--n", str(n), "--warmup", str(args.warmup), "--seconds", str(args.seconds)]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(args.warmup)
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(args.seconds)
    c1, t1 = cpu_ticks(pid), time.monotonic()
    out, _ = client.communicate(timeout=60)
    res = json.loads(out)
    res["cpu"] = 100.0 * (c1 - c0) / CLK / (t1 - t0)
    # CPU per part written: fair when one server cannot keep the frame rate
    res["us_per_part"] = res["cpu"] / 100 * 1e6 / max(1e-9, res["fps_median"] * n)
    return res


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def one_run(args: argparse.Namespace, n: int) -> dict:
    """Ours, then the floor, under the same load."""
    out = {}
    cmd = [sys.executable, str(Path(args.app).resolve()), "--host", "127.0.0.1", "--port",
           str(args.port), "--width", str(args.width), "--height", str(args.height),
           "--fps", str(args.fps), "--quality", str(args.quality), "--log-level", "warning",
           *args.server_args]
    if "--max-clients-per-ip" in subprocess.run(
            [sys.executable, args.app, "--help"], capture_output=True, text=True).stdout:
        cmd += ["--max-clients-per-ip", "0"]
    srv = subprocess.Popen(cmd, cwd=Path(args.app).resolve().parent, start_new_session=True)
    try:
        wait_for(args.port, "/status", srv)
        st = json.loads(http_get(args.port, "/status"))
        jpeg = http_get(args.port, args.path + ".jpg")
        out["ours"] = measure(args.port, st["pids"]["web"], args, n)
        out["ours"]["encode_ms"] = json.loads(http_get(args.port, "/status"))[
            "streams"][args.path.strip("/")]["encode_ms"]
    finally:
        stop(srv)
    floor = subprocess.Popen(
        [sys.executable, __file__, "floor", "--port", str(args.port + 1), "--fps",
         str(args.fps)], stdin=subprocess.PIPE, start_new_session=True)
    try:
        assert floor.stdin is not None
        floor.stdin.write(jpeg)
        floor.stdin.close()
        wait_port(args.port + 1, floor)
        out["floor"] = measure(args.port + 1, floor.pid, args, n)
    finally:
        stop(floor)
    out["jpeg_kb"] = len(jpeg) / 1024
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("floor", "load"):
        return sub_main(sys.argv[1], sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, nargs="+", default=[100, 300])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--path", default="/color")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--port", type=int, default=5197)
    p.add_argument("--app", default=str(ROOT / "app_mp.py"),
                   help="the server to measure (e.g. an older checkout's app_mp.py)")
    p.add_argument("server_args", nargs="*", help="extra app_mp.py options after --")
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(message)s")
    rows = []
    for n in args.clients:
        runs = []
        for i in range(args.runs):
            r = one_run(args, n)
            log.info("clients %d run %d: %s", n, i + 1,
                     json.dumps(r, default=lambda x: round(x, 2)))
            runs.append(r)
        rows.append((n, runs))
    w = sys.stdout.write
    w("| clients | server | fps min | fps median | latency p50 ms | latency p99 ms "
      "| fan-out delay p50 ms | p99 ms | CPU % | CPU µs per part |\n")
    w("|---|---|---|---|---|---|---|---|---|---|\n")
    for n, runs in rows:
        for who in ("ours", "floor"):
            def med(key: str, who: str = who, runs: list = runs) -> float:
                return statistics.median(r[who][key] for r in runs)
            w(f"| {n} | {who} | {med('fps_min'):.1f} | {med('fps_median'):.1f} | "
              f"{med('lat_p50_ms'):.1f} | {med('lat_p99_ms'):.1f} | "
              f"{med('spread_p50_ms'):.1f} | {med('spread_p99_ms'):.1f} | {med('cpu'):.1f} | "
              f"{med('us_per_part'):.1f} |\n")
        ratio = statistics.median(r["ours"]["cpu"] / r["floor"]["cpu"] for r in runs)
        per_part = statistics.median(r["ours"]["us_per_part"] / r["floor"]["us_per_part"]
                                     for r in runs)
        dp99 = statistics.median(r["ours"]["lat_p99_ms"] - r["floor"]["lat_p99_ms"]
                                 for r in runs)
        ds99 = statistics.median(r["ours"]["spread_p99_ms"] - r["floor"]["spread_p99_ms"]
                                 for r in runs)
        w(f"| {n} | ours vs floor | | | | {dp99:+.1f} ms | | {ds99:+.1f} ms | {ratio:.2f}x "
          f"| {per_part:.2f}x |\n")
    return 0


def sub_main(mode: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"bench_fanout.py {mode}")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--path", default="/color")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args(argv)
    if mode == "floor":
        jpeg = sys.stdin.buffer.read()
        try:
            asyncio.run(floor_server(a.port, jpeg, a.fps))
        except KeyboardInterrupt:
            pass
        return 0
    sys.stdout.write(json.dumps(asyncio.run(load(a.port, a.path, a.n, a.warmup, a.seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
