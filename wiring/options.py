"""The command line of every entry point, turned into one Config.

`app_mp.py` and `app_https_client.py` share the source and encoder options and differ
only in their sink options; each parser error is one line on stderr and exit code 2. The
checks reach into the camera and encoder packages (a recording is opened once, a
RealSense mode validated), which is why they live above `pipeline/`, where `Config`
itself is defined.
"""

from __future__ import annotations

import argparse
import logging

from media.depth import DEPTH_MODES
from pipeline.config import (
    Config,
    MetricOptions,
    _fps,
    _metres,
    _positive_int,
    _quality,
    hue_subsampling,
    ranged,
)

D455_SIZES = ((1280, 720), (848, 480), (640, 480))
LOG_LEVELS = ("debug", "info", "warning", "error")
METRIC_MODES = ("hue-log", "hue", "hue-inverse")
"""Depth codings of the metric stream, each decodable back to metres (media/hue.py)."""

def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_source_args(p: argparse.ArgumentParser) -> None:
    """Options that pick and shape the capture source."""
    g = p.add_argument_group("source")
    g.add_argument(
        "--source", default="auto",
        help="auto (a RealSense if one is attached, else the built-in synthetic scene), "
        "synthetic, realsense, a recording PATH.bag or PATH.db3, tcp://HOST:PORT "
        "(listen for a raw MJPEG pusher), or opencv:DEVICE_OR_URL_OR_FILE (default: auto)",
    )
    g.add_argument("--width", type=_positive_int, default=1280, help="frame width (default 1280)")
    g.add_argument("--height", type=_positive_int, default=720, help="frame height (default 720)")
    g.add_argument("--fps", type=_fps, default=30.0, help="frames per second (default 30)")
    g.add_argument("--serial", help="RealSense serial number, to choose among several cameras")
    g.add_argument("--no-align", dest="align", action="store_false",
                   help="do not align depth to color (saves ~2 ms per 720p frame on x86, "
                   "far more on ARM boards)")
    g.add_argument("--rs-filters", type=_name_list, default=(), metavar="LIST",
                   help="librealsense post-processing filters, comma-separated: "
                   "decimation,spatial,temporal,hole_filling")
    g.add_argument("--no-loop", dest="loop", action="store_false",
                   help="play a recording once instead of looping")
    g.add_argument("--no-realtime", dest="realtime", action="store_false",
                   help="play a recording as fast as possible (benchmarks)")
    g.add_argument("--record-raw", metavar="PATH.db3",
                   help="record the live RealSense session to a librealsense .db3 file")
    g.add_argument("--max-frame-bytes", type=_positive_int, default=8 * 1024 * 1024,
                   help="largest JPEG accepted from a tcp:// pusher (default 8 MiB)")


def add_encoder_args(p: argparse.ArgumentParser) -> None:
    """Options of the JPEG encoder and depth rendering."""
    g = p.add_argument_group("encoding")
    g.add_argument("--quality", type=_quality, default=80, help="JPEG quality 1-100 (default 80)")
    g.add_argument("--depth-mode", choices=DEPTH_MODES, default="colormap",
                   help="how depth is drawn: colormap (Turbo), gray (linear 8-bit), or Intel's "
                   "hue colorization that clients decode back to metres: hue (linear), "
                   "hue-inverse (disparity), hue-log (1%% accurate over 0.3-10 m)")
    g.add_argument("--depth-min", type=_metres, default=0.3,
                   help="nearest depth shown, metres (default 0.3)")
    g.add_argument("--depth-max", type=_metres, default=6.0,
                   help="farthest depth shown, metres (default 6)")
    g.add_argument("--encoder", choices=("auto", "turbojpeg", "opencv"), default="auto",
                   help="JPEG backend (default auto: libjpeg-turbo, else OpenCV)")
    g.add_argument("--filter", dest="filters", type=_name_list, default=(), metavar="LIST",
                   help="OpenCV filters applied to color before encoding, comma-separated")
    m = p.add_argument_group("metric depth stream (/metric)")
    m.add_argument("--metric-mode", choices=METRIC_MODES, default="hue-log",
                   help="depth coding of /metric, which clients decode to metres "
                   "(default hue-log: within 1 %% over 0.3-10 m); range --depth-min/--depth-max")
    m.add_argument("--metric-quality", type=ranged(int, 90, 100, "a whole number"), default=90,
                   help="JPEG quality of /metric, 90-100 (default 90; always 4:4:4)")


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Logging."""
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                   help="log verbosity (default info)")


def finish(p: argparse.ArgumentParser, ns: argparse.Namespace, cfg: Config) -> Config:
    """Cross-option checks shared by every entry point."""
    metric_mode = cfg.extra.pop("metric_mode", "hue-log")
    cfg.metric = MetricOptions(mode=metric_mode, quality=cfg.extra.pop("metric_quality", 90))
    if cfg.depth_min >= cfg.depth_max:
        p.error(f"--depth-min ({cfg.depth_min:g}) must be less than --depth-max "
                f"({cfg.depth_max:g})")
    if cfg.depth_mode.startswith("hue"):
        cfg.depth_quality = cfg.depth_quality or max(cfg.quality, 90)
        cfg.depth_subsampling = hue_subsampling(cfg.depth_mode)
    else:
        cfg.depth_quality = cfg.depth_quality or cfg.quality
    if cfg.width > 7680 or cfg.height > 4320:
        p.error(f"--width/--height {cfg.width}x{cfg.height} is larger than 7680x4320")
    if cfg.filters:
        from media.filters import parse_filter_list  # noqa: PLC0415

        try:
            cfg.filters = tuple(parse_filter_list(",".join(cfg.filters)))
        except ValueError as exc:
            p.error(str(exc))
    src = cfg.source
    if src.startswith("tcp://"):
        from camera.factory import check_listen_address, parse_hostport  # noqa: PLC0415

        try:
            host, _ = parse_hostport(src[len("tcp://"):])
            check_listen_address(host)
        except ValueError as exc:
            p.error(f"--source {src}: {exc}")
    elif src.startswith("opencv:"):
        if len(src) == len("opencv:"):
            p.error("--source opencv: needs a device number, file or URL")
    elif src not in ("auto", "synthetic", "realsense"):
        from pathlib import Path  # noqa: PLC0415

        if not src.endswith((".bag", ".db3")):
            p.error(f"--source {src!r}: expected auto, synthetic, realsense, PATH.bag, "
                    "PATH.db3, tcp://HOST:PORT or opencv:DEVICE")
        if not Path(src).is_file():
            p.error(f"--source {src}: no such recording file")
        _check_recording(p, cfg)
    if src == "realsense" or cfg.serial or cfg.rs_filters:
        _check_realsense(p, cfg)
    logging.getLogger().setLevel(cfg.log_level.upper())
    return cfg


def _check_recording(p: argparse.ArgumentParser, cfg: Config) -> None:
    """Open the recording once here, so a corrupt file is one line and exit code 2."""
    from camera.base import SourceConfigError, SourceError  # noqa: PLC0415
    from camera.realsense import RecordingSource, normalize_filters  # noqa: PLC0415

    try:
        normalize_filters(cfg.rs_filters)
        rec = RecordingSource(cfg.source, loop=cfg.loop, realtime=cfg.realtime,
                              align=cfg.align, filters=cfg.rs_filters)
        rec.open()
        rec.close()
    except (SourceConfigError, SourceError) as exc:
        p.error(f"--source {cfg.source}: {exc}")


def _check_realsense(p: argparse.ArgumentParser, cfg: Config) -> None:
    """Mode, filters and serial of a live camera, checked before any process starts."""
    from camera.base import SourceConfigError  # noqa: PLC0415
    from camera.realsense import (
        normalize_filters,
        realsense_devices,
        validate_mode,  # noqa: PLC0415
    )

    try:
        normalize_filters(cfg.rs_filters)
        if cfg.source == "realsense":
            validate_mode(cfg.width, cfg.height, cfg.fps)
    except SourceConfigError as exc:
        p.error(str(exc))
    if cfg.serial and cfg.source in ("realsense", "auto"):
        found = [d["serial"] for d in realsense_devices()]
        if cfg.serial not in found:
            p.error(f"--serial {cfg.serial}: no RealSense device with that serial "
                    f"(found: {', '.join(found) or 'none'})")


def config_from(ns: argparse.Namespace, **overrides: object) -> Config:
    """Copy parsed options that are Config fields into a Config."""
    known = Config.__dataclass_fields__
    values = {k: v for k, v in vars(ns).items() if k in known}
    values.update(overrides)
    extra = {k: v for k, v in vars(ns).items() if k not in known}
    cfg = Config(**values)  # type: ignore[arg-type]
    cfg.extra = extra
    return cfg
