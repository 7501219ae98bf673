"""Foxglove and MCAP figures for docs/BENCHMARKS.md: CPU of the sink children, bytes per channel.

    .venv/bin/python bench/bench_foxglove.py              # 720p30, 3 runs of 10 s
    .venv/bin/python bench/bench_foxglove.py --runs 5 --seconds 20

Each run starts app_mp.py (synthetic scene) with --foxglove and --record-mcap, connects
one Foxglove protocol client subscribed to color + depth, and reads for --seconds: CPU
seconds per second of each child (from /proc), bytes per second per channel on the
WebSocket and into the MCAP file. A last section times lossless depth encodings on one
frame, the figures behind sending raw 16UC1. Prints Markdown; medians over the runs.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_args, count_messages  # noqa: E402
from tests.helpers import children_of, free_port, running  # noqa: E402
from tests.robotics.fox_client import FoxgloveClient, listener_pid  # noqa: E402

log = logging.getLogger("bench")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def mcap_pid(parent: int, path: Path) -> int:
    for pid in children_of(parent):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if fd.readlink() == path:
                    return pid
            except OSError:
                continue
    raise RuntimeError("no child holds the MCAP file open")


def mcap_rate(path: Path) -> tuple[float, float]:
    """(bytes, depth frames) per second of recording: the finalized file over its time span."""
    from mcap.reader import make_reader  # noqa: PLC0415

    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    stats = summary.statistics
    span = (stats.message_end_time - stats.message_start_time) / 1e9
    depth = next(i for i, c in summary.channels.items() if c.topic == "/camera/depth")
    return path.stat().st_size / span, stats.channel_message_counts[depth] / span


def one_run(width: int, height: int, seconds: float, compression: str) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mcap"
        with running("--width", str(width), "--height", str(height), "--fps", "30",
                     "--foxglove", f"127.0.0.1:{port}", "--record-mcap", str(out),
                     "--record-mcap-compression", compression, "--log-level", "warning") as srv:
            c = FoxgloveClient(port)
            c.wait_channels(["/camera/color", "/camera/depth"])
            fox = listener_pid(srv.pid, port)
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            rec = mcap_pid(srv.pid, out)
            idle0, t_idle = cpu_s(fox), time.monotonic()
            time.sleep(3.0)
            idle = (cpu_s(fox) - idle0) / (time.monotonic() - t_idle)
            c.subscribe(["/camera/color", "/camera/depth"])
            c.collect({"/camera/color": 5, "/camera/depth": 5}, timeout=30)
            c.bytes_by_topic.clear()
            f0, r0 = cpu_s(fox), cpu_s(rec)
            enc0 = srv.status()["streams"]["color"]["frames_encoded"]
            counts, dt = count_messages(c, ("/camera/color", "/camera/depth"), seconds)
            res = {
                "fox_cpu": (cpu_s(fox) - f0) / dt, "fox_idle_cpu": idle,
                "mcap_cpu": (cpu_s(rec) - r0) / dt,
                "color_Bps": c.bytes_by_topic.get("/camera/color", 0) / dt,
                "depth_Bps": c.bytes_by_topic.get("/camera/depth", 0) / dt,
                "color_fps": counts["/camera/color"] / dt,
                "depth_fps": counts["/camera/depth"] / dt,
                "encoded_fps": (srv.status()["streams"]["color"]["frames_encoded"] - enc0) / dt,
            }
            c.close()
        res["mcap_Bps"], res["mcap_fps"] = mcap_rate(out)
    log.info("run: %s", {k: round(v, 3) for k, v in res.items()})
    return res


def depth_encodings(width: int, height: int, repeat: int = 10) -> list[tuple[str, float, float]]:
    """(name, bytes per frame, ms per frame) of lossless depth encodings on a synthetic frame."""
    import cv2  # noqa: PLC0415
    import zstandard  # noqa: PLC0415

    from camera.synthetic import SyntheticSource  # noqa: PLC0415

    src = SyntheticSource(width, height, 30.0)
    src.open()
    frame = src.read(1.0)
    src.close()
    assert frame is not None and frame.depth is not None
    depth = frame.depth
    raw = depth.tobytes()
    rows = [("raw 16UC1 (RawImage)", float(len(raw)), 0.0)]
    cases = {
        "PNG 16-bit, level 1 (OpenCV)": lambda: bytes(cv2.imencode(
            ".png", depth, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]),
        "zstd level 1": lambda: zstandard.ZstdCompressor(level=1).compress(raw),
        "zstd level 3 (MCAP default)": lambda: zstandard.ZstdCompressor(level=3).compress(raw),
    }
    import lz4.frame  # noqa: PLC0415

    cases["lz4"] = lambda: lz4.frame.compress(raw)
    for name, fn in cases.items():
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            data = fn()
            times.append(time.perf_counter() - t)
        rows.append((name, float(len(data)), statistics.median(times) * 1000))
    return rows


def mcap_writer_cost(width: int, height: int, frames: int = 90) -> list[tuple[str, float, float]]:
    """(compression, CPU ms, bytes) per depth frame through the SDK's MCAP writer alone."""
    import foxglove  # noqa: PLC0415
    from foxglove.channels import RawImageChannel  # noqa: PLC0415
    from foxglove.mcap import MCAPCompression, MCAPWriteOptions  # noqa: PLC0415
    from foxglove.messages import RawImage  # noqa: PLC0415

    from camera.synthetic import SyntheticSource  # noqa: PLC0415
    from robotics.mcap_files import MCAP_CHUNK_BYTES  # noqa: PLC0415

    src = SyntheticSource(width, height, 30.0)
    src.open()
    depths = [src.read(1.0).depth.tobytes() for _ in range(30)]  # type: ignore[union-attr]
    src.close()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, comp in (("zstd", MCAPCompression.Zstd), ("lz4", MCAPCompression.Lz4),
                           ("none", None)):
            ctx = foxglove.Context()
            path = Path(tmp) / f"{name}.mcap"
            w = foxglove.open_mcap(path, context=ctx, writer_options=MCAPWriteOptions(
                compression=comp, chunk_size=MCAP_CHUNK_BYTES, compression_threads=0))
            ch = RawImageChannel("/camera/depth", context=ctx)
            t = time.process_time()
            for i in range(frames):
                ch.log(RawImage(width=width, height=height, encoding="16UC1", step=width * 2,
                                data=depths[i % len(depths)]), log_time=i + 1)
            w.close()
            rows.append((name, (time.process_time() - t) / frames * 1000,
                         path.stat().st_size / frames))
    return rows


def main() -> None:
    args = bench_args(__doc__, width=1280, height=720, seconds=10.0, runs=3)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    log.info("load average before: %s", os.getloadavg())
    results: dict[str, list[dict[str, float]]] = {}
    for compression in ("zstd", "lz4"):
        results[compression] = [one_run(args.width, args.height, args.seconds, compression)
                                for _ in range(args.runs)]
    med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for c, rs in results.items()}
    z = med["zstd"]
    for v in med.values():
        v["fox_ms"] = v["fox_cpu"] * 1000 / v["depth_fps"]
        v["mcap_ms"] = v["mcap_cpu"] * 1000 / v["mcap_fps"]
    print(f"\n{args.width}x{args.height} at 30 fps, synthetic scene, one client on color + "
          f"depth, median of {args.runs} runs of {args.seconds:g} s "
          f"(load average before: {os.getloadavg()[0]:.1f})\n")
    print("| figure | value |\n|---|---|")
    print(f"| Foxglove child CPU, no subscriber | {z['fox_idle_cpu'] * 100:.1f} % of a core |")
    print(f"| Foxglove child CPU, color + depth subscribed | {z['fox_cpu'] * 100:.1f} % "
          f"of a core ({z['fox_ms']:.1f} ms per color + depth frame) |")
    for topic, key in (("/camera/color", "color"), ("/camera/depth", "depth")):
        per = z[f"{key}_Bps"] / max(z[f"{key}_fps"], 1e-9)
        print(f"| {topic} on the WebSocket | {z[f'{key}_Bps'] / 1e6:.2f} MB/s at "
              f"{z[f'{key}_fps']:.1f} msg/s ({per / 1e3:.0f} kB per message; "
              f"{per * 30 / 1e6:.1f} MB/s at 30 fps) |")
    print(f"| color frames encoded while subscribed | {z['encoded_fps']:.1f} fps |")
    for c, v in med.items():
        per = v["mcap_Bps"] / max(v["mcap_fps"], 1e-9)
        print(f"| MCAP child CPU, {c} chunks | {v['mcap_cpu'] * 100:.1f} % of a core "
              f"({v['mcap_ms']:.1f} ms per recorded frame) |")
        print(f"| MCAP file, {c} chunks | {v['mcap_Bps'] / 1e6:.2f} MB/s at "
              f"{v['mcap_fps']:.1f} fps ({per / 1e3:.0f} kB per frame; "
              f"{per * 30 / 1e6:.1f} MB/s at 30 fps) |")
    print(f"\nThe SDK's MCAP writer alone, {args.width}x{args.height} synthetic depth, "
          "CPU time per frame (90 frames):\n")
    print("| chunks | CPU ms per frame | bytes per frame | MB/s at 30 fps |\n|---|---|---|---|")
    for name, ms, size in mcap_writer_cost(args.width, args.height):
        print(f"| {name} | {ms:.1f} | {size / 1e3:.0f} kB | {size * 30 / 1e6:.1f} |")
    print(f"\nLossless depth encodings of one {args.width}x{args.height} synthetic frame "
          "(median of 10):\n")
    print("| encoding | bytes per frame | ms per frame | MB/s at 30 fps |\n|---|---|---|---|")
    for name, size, ms in depth_encodings(args.width, args.height):
        print(f"| {name} | {size / 1e3:.0f} kB | {ms:.1f} | {size * 30 / 1e6:.1f} |")


if __name__ == "__main__":
    main()
