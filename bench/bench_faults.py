"""Fault figures for docs/RELIABILITY.md: what each fault costs the clients, measured.

    .venv/bin/python bench/bench_faults.py              # kills, slow client, churn, stop
    .venv/bin/python bench/bench_faults.py --soak 600   # plus 50 clients for 10 minutes

Uses the real server and the same clients as the fault tests; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.test_faults import Watcher, _churn, open_fds, rss_kb  # noqa: E402
from tests.helpers import Server, children_of, pid_alive, running, shm_segments  # noqa: E402

log = logging.getLogger("bench")
ROWS: list[tuple[str, str]] = []


def row(fault: str, outcome: str) -> None:
    ROWS.append((fault, outcome))
    log.info("%s: %s", fault, outcome)


def kills() -> None:
    with running("--width", "1280", "--height", "720") as srv:
        watchers = [Watcher(srv.port) for _ in range(20)]
        for w in watchers:
            w.start()
        time.sleep(2)
        for role in ("encoder", "capture"):
            t = time.time()
            os.kill(srv.status()["pids"][role], signal.SIGKILL)
            time.sleep(4)
            delays = [w.resumed_after(t) for w in watchers]
            lost = sum(1 for w in watchers if w.error is not None)
            ok = [d for d in delays if d is not None]
            row(f"SIGKILL {role}, 20 clients on /color (720p30)",
                f"{lost} connections lost; fresh frames after median "
                f"{statistics.median(ok):.2f} s, worst {max(ok):.2f} s; "
                f"log lines: {srv.log().count(f'{role} process died')}")
        for w in watchers:
            w.close()


def slow_client() -> None:
    import multiprocessing as mp  # noqa: PLC0415

    from bench.bench_server import client_worker  # noqa: PLC0415

    with running("--width", "1280", "--height", "720") as srv:
        web = srv.status()["pids"]["web"]
        slow = socket.create_connection(("127.0.0.1", srv.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /color HTTP/1.1\r\nHost: x\r\n\r\n")
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        procs = [ctx.Process(target=client_worker, args=(srv.port, "/color", 50, 13.0, q))
                 for _ in range(2)]
        for proc in procs:
            proc.start()
        time.sleep(3)
        rss0 = rss_kb(web)
        for _ in range(100):
            slow.recv(100)
            time.sleep(0.1)
        growth = rss_kb(web) - rss0
        results = [r for _ in procs for r in q.get(timeout=60)]
        for proc in procs:
            proc.join(10)
        rates = sorted(r["fps"] for r in results)
        row("one client reading 1 KB/s beside 100 normal clients (720p30)",
            f"normal clients min {rates[0]:.1f} fps, median {statistics.median(rates):.1f}; "
            f"web RSS change over 10 s {growth / 1024:+.1f} MB")
        slow.close()


def churn(cycles: int) -> None:
    with running("--width", "640", "--height", "480") as srv:
        web = srv.status()["pids"]["web"]
        _churn(srv.port, 200, 0)
        time.sleep(1)
        rss0, fds0 = rss_kb(web), open_fds(web)
        t0 = time.monotonic()
        threads = [threading.Thread(target=_churn, args=(srv.port, cycles // 4, i + 1))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        time.sleep(2)
        row(f"{cycles} connect/disconnect cycles (before reply, mid-part, reset)",
            f"{took:.0f} s; web RSS {(rss_kb(web) - rss0) / 1024:+.1f} MB, open fds "
            f"{open_fds(web) - fds0:+d}, viewers after {srv.status()['viewers']}")


def stop_under_load() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = Server("--width", "1280", "--height", "720")
        srv.wait_ready()
        watchers = [Watcher(srv.port, p) for p in ("/color", "/depth", "/combined") * 10]
        for w in watchers:
            w.start()
        time.sleep(2)
        kids = children_of(srv.pid)
        t0 = time.monotonic()
        code = srv.stop(sig, timeout=10)
        took = time.monotonic() - t0
        for w in watchers:
            w.close()
        time.sleep(0.5)
        row(f"{signal.Signals(sig).name} with 30 clients",
            f"exit {code} in {took:.2f} s; orphans {sum(pid_alive(p) for p in kids)}; "
            f"/dev/shm segments left {len(shm_segments(srv.pid))}")
        srv.kill()
    srv = Server("--width", "640", "--height", "480")
    srv.wait_ready()
    kids = children_of(srv.pid)
    os.kill(srv.pid, signal.SIGKILL)
    t0 = time.monotonic()
    while any(pid_alive(p) for p in kids) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    gone = time.monotonic() - t0
    left = len(shm_segments(srv.pid))
    with running("--width", "640", "--height", "480", port=srv.port):
        pass
    row("SIGKILL of the main process",
        f"children gone after {gone:.2f} s; segments left {left} (the next start removes "
        f"any), next start on the same port: ok, then {len(shm_segments(srv.pid))} left")
    srv.kill()


def soak(seconds: float) -> None:
    with running("--width", "1280", "--height", "720") as srv:
        pids = srv.status()["pids"]
        watchers = [Watcher(srv.port) for _ in range(50)]
        for w in watchers:
            w.start()
        time.sleep(5)
        rss_start = {r: rss_kb(p) for r, p in pids.items()}
        t0 = time.time()
        samples = []
        while time.time() - t0 < seconds:
            time.sleep(min(60, seconds))
            samples.append({r: rss_kb(p) for r, p in pids.items()})
        rates = sorted(len([a for a, _ in w.parts if a > t0]) / (time.time() - t0)
                       for w in watchers)
        lost = sum(1 for w in watchers if w.error is not None)
        drift = {r: (samples[-1][r] - rss_start[r]) / 1024 for r in pids}
        row(f"50 clients for {seconds / 60:.0f} min (720p30)",
            f"{lost} lost; fps min {rates[0]:.2f}, median {statistics.median(rates):.2f}; RSS "
            "change " + ", ".join(f"{r} {d:+.1f} MB" for r, d in drift.items()))
        for w in watchers:
            w.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--soak", type=float, default=0, help="seconds of the 50-client soak")
    p.add_argument("--cycles", type=int, default=10000)
    p.add_argument("--only", choices=("kills", "slow", "churn", "stop", "soak"))
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(message)s")
    steps = {"kills": kills, "slow": slow_client, "churn": lambda: churn(args.cycles),
             "stop": stop_under_load, "soak": lambda: soak(args.soak)}
    for name, fn in steps.items():
        if (args.only and name != args.only) or (name == "soak" and not args.soak):
            continue
        fn()
    sys.stdout.write("| fault | measured outcome |\n|---|---|\n")
    for fault, outcome in ROWS:
        sys.stdout.write(f"| {fault} | {outcome} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
