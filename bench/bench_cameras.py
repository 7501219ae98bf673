"""Four cameras in one server against one: client rates, CPU and memory of the tree.

    .venv/bin/python bench/bench_cameras.py                  # 4 cameras, 848x480@30, 3 runs
    .venv/bin/python bench/bench_cameras.py --cameras 2 --clients 5 --seconds 10

Each run starts app_mp.py twice on the synthetic scene, once with one camera and once with
--cameras of them (`--source cN=synthetic`), and reads --clients MJPEG clients on each
camera's /cam/NAME/color from one asyncio process. Over --seconds it measures every
client's frame rate, the CPU of the whole process tree (supervisor and every child,
from /proc), and the tree's memory: the sum of RSS, which counts a page shared by two
processes twice, and of PSS, which splits it. Then, in the several-camera tree, it
SIGKILLs camera c2's capture under the same clients and measures the longest frame gap
the other cameras' clients saw and how soon c2's clients had a frame captured after the
kill. Prints Markdown; medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_fanout import Reader, cpu_ticks  # noqa: E402
from bench.common import bench_args  # noqa: E402
from tests.helpers import children_of, running  # noqa: E402

log = logging.getLogger("bench")
TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children_of(p))
    return out


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """Summed RSS and PSS of `pids`, MB."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, pss / 1024


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += cpu_ticks(pid)
        except (OSError, IndexError):
            pass
    return total / TICK


class Window:
    """CPU of the tree between start() and end(), its memory at the end."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def start(self) -> None:
        self.pids = tree(self.pid)
        self.c0, self.t0 = cpu_s(self.pids), time.monotonic()

    def end(self) -> None:
        pids = tree(self.pid)
        self.cpu = (cpu_s(pids) - self.c0) / (time.monotonic() - self.t0)
        self.rss, self.pss = memory_mb(pids)
        self.processes = len(pids)


async def read_all(port: int, paths: list[str], *, clients: int, warmup: float,
                   seconds: float, window: Window) -> list[float]:
    """Every client's frame rate over the window after `warmup`."""
    loop = asyncio.get_running_loop()
    t_measure = time.time() + warmup
    readers, transports = [], []
    for path in paths:
        for _ in range(clients):
            t, r = await loop.create_connection(lambda p=path: Reader(p, t_measure),
                                                "127.0.0.1", port)
            readers.append(r)
            transports.append(t)
    await asyncio.sleep(warmup)
    window.start()
    await asyncio.sleep(seconds)
    window.end()
    for t in transports:
        t.close()
    return [(len(r.frames) - 1) / (r.frames[-1] - r.frames[0])
            if len(r.frames) > 1 and r.frames[-1] > r.frames[0] else 0.0 for r in readers]


async def isolation(port: int, paths: list[str], clients: int, victim: int
                    ) -> tuple[float, float]:
    """SIGKILL `victim` (the capture child of paths[1]'s camera) under the clients: the
    longest gap between two frames any other camera's client saw around it, and how long
    the victim's clients waited for a frame captured after the kill (seconds)."""
    loop = asyncio.get_running_loop()
    readers: dict[str, list[Reader]] = {p: [] for p in paths}
    transports = []
    t0 = time.time()
    for path in paths:
        for _ in range(clients):
            t, r = await loop.create_connection(lambda p=path: Reader(p, t0), "127.0.0.1", port)
            readers[path].append(r)
            transports.append(t)
    await asyncio.sleep(3.0)
    t_kill = time.time()
    os.kill(victim, signal.SIGKILL)
    await asyncio.sleep(5.0)
    for t in transports:
        t.close()
    gap = 0.0
    for path, rs in readers.items():
        if path == paths[1]:
            continue
        for r in rs:
            near = [a for a in r.frames if t_kill - 1.0 <= a <= t_kill + 4.0]
            gap = max([gap, *(b - a for a, b in zip(near, near[1:], strict=False))])
    back = [min((a for a, lat in zip(r.frames, r.latency, strict=True) if a - lat > t_kill),
                default=float("inf")) - t_kill for r in readers[paths[1]]]
    return gap, max(back)


def one_tree(n: int, a: argparse.Namespace) -> dict[str, float]:
    """One server with `n` cameras under its clients: rates, CPU, memory."""
    sources = [x for i in range(n) for x in ("--source", f"c{i + 1}=synthetic")]
    with running(*sources, "--width", str(a.width), "--height", str(a.height),
                 "--fps", "30", "--log-level", "warning") as srv:
        deadline = time.monotonic() + 30
        while True:
            cams = srv.status().get("cameras", {})
            if len(cams) == n and all(c["frames_captured"] > 0 for c in cams.values()):
                break
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        win = Window(srv.pid)
        paths = [f"/cam/c{i + 1}/color" for i in range(n)]
        fps = asyncio.run(read_all(srv.port, paths, clients=a.clients, warmup=3.0,
                                   seconds=a.seconds, window=win))
        captured = [c["fps_captured"] for c in srv.status()["cameras"].values()]
        gap = back = 0.0
        if n > 1:
            victim = srv.status()["cameras"]["c2"]["pids"]["capture"]
            gap, back = asyncio.run(isolation(srv.port, paths, a.clients, victim))
    res = {"fps_min": min(fps), "fps_median": statistics.median(fps),
           "captured_min": min(captured), "cpu": win.cpu, "rss": win.rss, "pss": win.pss,
           "processes": win.processes, "gap": gap, "back": back}
    log.info("%d camera(s): %s", n, {k: round(v, 2) for k, v in res.items()})
    return res


def main() -> None:
    args = bench_args(__doc__, cameras=4, clients=5, width=848, height=480, seconds=10.0,
                      runs=3)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    load = os.getloadavg()[0]
    ones, manys = [], []
    for _ in range(args.runs):
        ones.append(one_tree(1, args))
        manys.append(one_tree(args.cameras, args))
    med = [{k: statistics.median(r[k] for r in rs) for k in rs[0]} for rs in (ones, manys)]
    one, many = med
    n = args.cameras
    print(f"\n{args.width}x{args.height} at 30 fps, synthetic scene, {args.clients} MJPEG "
          f"clients per camera on /cam/NAME/color, median of {args.runs} runs of "
          f"{args.seconds:g} s (load average before: {load:.1f}, {os.cpu_count()} cores)\n")
    print("| tree | processes | slowest client | median client | CPU (cores) | RSS sum | "
          "PSS sum |\n|---|---|---|---|---|---|---|")
    for label, m in (("1 camera", one), (f"{n} cameras", many)):
        print(f"| {label} | {m['processes']:.0f} | {m['fps_min']:.1f} fps | "
              f"{m['fps_median']:.1f} fps | {m['cpu']:.2f} | {m['rss']:.0f} MB | "
              f"{m['pss']:.0f} MB |")
    print(f"\n{n} cameras against {n} x 1 camera: CPU {many['cpu'] / (n * one['cpu']):.2f}, "
          f"RSS {many['rss'] / (n * one['rss']):.2f}, PSS {many['pss'] / (n * one['pss']):.2f}")
    worst_gap, worst_back = max(r["gap"] for r in manys), max(r["back"] for r in manys)
    print(f"\nc2's capture SIGKILLed under the clients: the other cameras' clients' longest "
          f"gap {many['gap'] * 1000:.0f} ms; c2's clients had a new frame after "
          f"{many['back']:.2f} s (medians; worst of the runs {worst_gap * 1000:.0f} ms and "
          f"{worst_back:.2f} s)")


if __name__ == "__main__":
    main()
