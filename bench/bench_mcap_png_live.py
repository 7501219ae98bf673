"""Whether `--record-mcap-depth png` keeps up with capture, for docs/BENCHMARKS.md.

    .venv/bin/python bench/bench_mcap_png_live.py                 # 1280x720@30, 3 runs of 20 s
    .venv/bin/python bench/bench_mcap_png_live.py --runs 5 --seconds 30

Each run starts app_mp.py on the synthetic scene with --record-mcap, once with the
default raw depth and once with PNG, records for --seconds and stops. It reports the
frames captured per second (/status), the depth frames per second the finalized file
holds over the same span, the depth frames the recorder dropped (/status) and the MCAP
child's CPU in cores (from /proc). Keeping up means the file's depth rate equals the
capture rate with nothing dropped. Prints Markdown; medians over the runs.
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_foxglove import cpu_s, mcap_pid, mcap_rate  # noqa: E402
from bench.common import bench_args  # noqa: E402
from tests.helpers import running  # noqa: E402

log = logging.getLogger("bench")


def one_run(width: int, height: int, seconds: float, depth: str) -> dict[str, float]:
    """Capture rate, depth rate in the file, drops and recorder CPU over one recording."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mcap"
        with running("--width", str(width), "--height", str(height), "--fps", "30",
                     "--record-mcap", str(out), "--record-mcap-depth", depth,
                     "--log-level", "warning") as srv:
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            rec = mcap_pid(srv.pid, out)
            time.sleep(2.0)  # past the first file's schemas and the encoders' warm-up
            st0, c0, t0 = srv.status(), cpu_s(rec), time.monotonic()
            time.sleep(seconds)
            st1, c1, t1 = srv.status(), cpu_s(rec), time.monotonic()
            assert srv.stop(signal.SIGINT) == 0
        res = {"capture_fps": (st1["frames_captured"] - st0["frames_captured"]) / (t1 - t0),
               "mcap_cpu": (c1 - c0) / (t1 - t0),
               "dropped": float(st1["mcap"]["depth_dropped"])}
        res["file_Bps"], res["file_depth_fps"] = mcap_rate(out)
    log.info("%s: %s", depth, {k: round(v, 2) for k, v in res.items()})
    return res


def main() -> None:
    args = bench_args(__doc__, width=1280, height=720, seconds=20.0, runs=3)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    load = os.getloadavg()[0]
    med = {}
    for depth in ("raw", "png"):
        rs = [one_run(args.width, args.height, args.seconds, depth) for _ in range(args.runs)]
        med[depth] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    print(f"\n{args.width}x{args.height} at 30 fps, synthetic scene, --record-mcap, median of "
          f"{args.runs} runs of {args.seconds:g} s (load average before: {load:.1f}, "
          f"{os.cpu_count()} cores)\n")
    print("| depth | captured fps | depth fps in the file | depth frames dropped | "
          "MCAP child CPU | file MB/s |\n|---|---|---|---|---|---|")
    for depth, v in med.items():
        print(f"| {depth} | {v['capture_fps']:.1f} | {v['file_depth_fps']:.1f} | "
              f"{v['dropped']:.0f} | {v['mcap_cpu'] * 100:.0f} % of a core | "
              f"{v['file_Bps'] / 1e6:.1f} |")


if __name__ == "__main__":
    main()
