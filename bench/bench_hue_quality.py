"""Size, encode time and decoded accuracy of hue depth for JPEG quality / subsampling.

Accuracy is the goal of docs/DEPTH_HUE.md: the share of valid pixels decoded within 1 % of
the true depth, overall and in the worst of six depth ranges, on the documented test scene
(`synthetic_depth_scene`, 0.3-10 m) over several seeds. Sizes and encode times are also given
for the server's synthetic source (its depth has 4 mm noise and 0.5 % dropouts, so it makes
far bigger JPEGs; accuracy there is against its own depth clipped to 0.3-6 m).
Run: .venv/bin/python bench/bench_hue_quality.py [--mode hue-log] [--seeds N] [--runs N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from turbojpeg import TJPF_BGRX, TJSAMP_420, TJSAMP_422, TJSAMP_444, TurboJPEG

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from camera.synthetic import SyntheticSource  # noqa: E402
from media.depth import render_depth_bgrx  # noqa: E402
from media.hue import HUE_MODES, decode_hue_depth  # noqa: E402
from tests.media.test_hue import (  # noqa: E402
    DMAX,
    DMIN,
    synthetic_depth_scene,
    within_1pct_by_range,
)

logger = logging.getLogger("bench_hue_quality")

SAMPLING = {"444": TJSAMP_444, "422": TJSAMP_422, "420": TJSAMP_420}
SETTINGS = [(q, s) for s in ("444", "422", "420") for q in (95, 90, 85, 80, 75, 70)]


def median_ms(fn, runs: int) -> float:  # noqa: ANN001
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(ts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=tuple(HUE_MODES), default="hue-log")
    p.add_argument("--seeds", type=int, default=3, help="test-scene seeds (default 3)")
    p.add_argument("--runs", type=int, default=15, help="timed encodes per setting (default 15)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tj = TurboJPEG()
    scenes = [synthetic_depth_scene(seed=s) for s in range(args.seeds)]
    src = SyntheticSource(1280, 720, 30)
    src.open()
    frame = src.read(1.0)
    assert frame is not None
    mode, mapping = args.mode, HUE_MODES[args.mode]
    scale = frame.depth_scale
    live = render_depth_bgrx(frame.depth, mode, 0.3, 6.0, scale)
    live_mm = np.rint(frame.depth * (scale * 1000)).astype(np.uint16)
    live_truth = np.where(live_mm > 0, np.clip(live_mm, 300, 6000), 0).astype(np.uint16)
    pictures = [render_depth_bgrx(d, mode, DMIN, DMAX) for d in scenes]
    logger.info("%s, test scene 0.3-10 m over %d seeds; synthetic source 0.3-6 m", mode,
                args.seeds)
    logger.info("| quality | sampling | all % (worst seed) | worst range % | test scene KB | "
                "source all % | source KB | source encode ms |")
    logger.info("|---|---|---|---|---|---|---|---|")
    for q, s in SETTINGS:
        alls, worst, kbs = [], [], []
        for depth, img in zip(scenes, pictures, strict=True):
            jpg = tj.encode(img, q, TJPF_BGRX, SAMPLING[s])
            frac = within_1pct_by_range(depth, decode_hue_depth(jpg, DMIN, DMAX, mapping=mapping))
            alls.append(frac["all"])
            worst.append(min(v for k, v in frac.items() if k.count("-") and k not in (
                "500-10000", "300-4000")))
            kbs.append(len(jpg) / 1024)
        jpg = tj.encode(live, q, TJPF_BGRX, SAMPLING[s])
        back = decode_hue_depth(jpg, 0.3, 6.0, mapping=mapping)
        with warnings.catch_warnings():  # the source has no depth beyond 6 m: empty ranges
            warnings.simplefilter("ignore", RuntimeWarning)
            live_all = within_1pct_by_range(live_truth, back)["all"]
        ms = median_ms(lambda q=q, s=s: tj.encode(live, q, TJPF_BGRX, SAMPLING[s]), args.runs)
        logger.info("| %d | %s | %.1f | %.1f | %.0f | %.1f | %.0f | %.2f |", q, s,
                    100 * min(alls), 100 * min(worst), statistics.mean(kbs), 100 * live_all,
                    len(jpg) / 1024, ms)


if __name__ == "__main__":
    main()
