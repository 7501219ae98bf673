"""Load benchmark: the real server and N loopback MJPEG clients.

Starts app_mp.py, opens N clients on one stream (spread over a few client processes,
each a non-blocking selector loop that skips JPEG bodies by Content-Length), and
reports per-client fps (min/median), capture-to-client latency from X-Timestamp
(p50/p99), CPU % of each server process and their RSS. Several runs; medians printed
as a Markdown table.

    .venv/bin/python bench/bench_server.py --clients 100 --seconds 10 --runs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BodySkipper, status, wait_started  # noqa: E402

log = logging.getLogger("bench")
CLK = os.sysconf("SC_CLK_TCK")


class Client(BodySkipper):
    """One connection: parses part headers, skips bodies, records frame times."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.buf = bytearray()
        self.skip = 0
        self.in_headers = True
        self.first = True
        self.frames = 0
        self.latency: list[float] = []
        self.t_first = 0.0
        self.t_last = 0.0

    def on_data(self, data: bytes, now: float) -> None:
        view = memoryview(data)
        while view:
            if self.skip:
                view = self.skipped(view)
                continue
            self.buf += view
            view = memoryview(b"")
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            rest = bytes(self.buf[end + 4:])
            self.buf.clear()
            if self.first:
                self.first = False
            else:
                fields = dict(
                    ln.split(":", 1) for ln in head.split("\r\n") if ":" in ln)
                length = int(fields["Content-Length"])
                ts = float(fields["X-Timestamp"])
                self.frames += 1
                self.latency.append(now - ts)
                self.t_last = now
                if self.frames == 1:
                    self.t_first = now
                self.skip = length + 2
            view = memoryview(rest)


def client_worker(port: int, path: str, n: int, seconds: float, out: mp.Queue) -> None:
    """Run n clients for `seconds` in one process; report per-client results."""
    sel = selectors.DefaultSelector()
    clients = [Client(port, path) for _ in range(n)]
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            try:
                data = c.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(c.sock)
                continue
            c.on_data(data, time.time())
    res = []
    for c in clients:
        span = c.t_last - c.t_first
        fps = (c.frames - 1) / span if c.frames > 1 and span > 0 else 0.0
        res.append({"fps": fps, "latency": c.latency[len(c.latency) // 10:]})
        c.sock.close()
    out.put(res)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(args: argparse.Namespace, port: int) -> dict:
    """Start the server, load it, measure, stop it."""
    cmd = [sys.executable, str(ROOT / "app_mp.py"), "--host", "127.0.0.1", "--port", str(port),
           "--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps),
           "--log-level", "warning", *args.server_args]
    srv = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        st = wait_started(port, srv)
        pids = {"main": srv.pid, **st["pids"]}
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        procs = []
        per = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
               for i in range(args.client_procs)]
        for n in per:
            if n:
                p = ctx.Process(target=client_worker,
                                args=(port, args.path, n, args.seconds + args.warmup, q))
                p.start()
                procs.append(p)
        time.sleep(args.warmup)
        t0 = time.monotonic()
        ticks0 = {k: cpu_ticks(p) for k, p in pids.items()}
        rss0 = {k: round(rss_mb(p), 1) for k, p in pids.items()}
        time.sleep(args.seconds)
        ticks1 = {k: cpu_ticks(p) for k, p in pids.items()}
        dt = time.monotonic() - t0
        rss = {k: round(rss_mb(p), 1) for k, p in pids.items()}
        st = status(port)
        results = [r for _ in procs for r in q.get(timeout=60)]
        for p in procs:
            p.join(10)
        fps = sorted(r["fps"] for r in results)
        lat = sorted(x for r in results for x in r["latency"])
        return {
            "fps_min": fps[0], "fps_median": statistics.median(fps),
            "lat_p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
            "lat_p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
            "cpu": {k: 100.0 * (ticks1[k] - ticks0[k]) / CLK / dt for k in pids},
            "rss_mb": rss,
            "rss_change_mb": {k: round(rss[k] - rss0[k], 1) for k in pids},
            "server_encode_ms": st["streams"][args.path.strip("/")]["encode_ms"],
        }
    finally:
        srv.send_signal(signal.SIGINT)
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, signal.SIGKILL)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=100, help="clients (max 200)")
    p.add_argument("--client-procs", type=int, default=2, help="client processes")
    p.add_argument("--path", default="/color", help="stream to read")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    p.add_argument("--runs", type=int, default=3, help="runs (medians are reported)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--port", type=int, default=5099)
    p.add_argument("server_args", nargs="*", help="extra app_mp.py options after --")
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(message)s")
    if not 1 <= args.clients <= 200:
        p.error("--clients must be 1..200")
    runs = []
    for i in range(args.runs):
        r = one_run(args, args.port)
        log.info("run %d: %s", i + 1, json.dumps(r, default=lambda x: round(x, 2)))
        runs.append(r)

    def med(f):  # noqa: ANN001, ANN202
        return statistics.median(f(r) for r in runs)

    roles = runs[0]["cpu"].keys()
    out = sys.stdout
    out.write("| clients | fps min | fps median | latency p50 ms | latency p99 ms | "
              + " | ".join(f"CPU {k} %" for k in roles) + " | "
              + " | ".join(f"RSS {k} MB" for k in roles) + " |\n")
    out.write("|" + "---|" * (5 + 2 * len(roles)) + "\n")
    out.write(f"| {args.clients} | {med(lambda r: r['fps_min']):.1f} | "
              f"{med(lambda r: r['fps_median']):.1f} | {med(lambda r: r['lat_p50_ms']):.1f} | "
              f"{med(lambda r: r['lat_p99_ms']):.1f} | "
              + " | ".join(f"{med(lambda r, k=k: r['cpu'][k]):.1f}" for k in roles) + " | "
              + " | ".join(f"{med(lambda r, k=k: r['rss_mb'][k]):.0f}" for k in roles) + " |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
