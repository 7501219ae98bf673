"""The pipeline's part of every command line: source and encoding options, into Config.

`app_mp.py` and `app_https_client.py` share these groups and differ in their sinks'
groups, which each role declares beside its options type; each parser error is one line
on stderr and exit code 2. The checks reach into the camera and media packages (a
recording is opened once, a RealSense mode validated), which is why they live above
`pipeline/`, where `Config` itself is defined.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camera.base import SourceConfigError, SourceError
from media.depth import DEPTH_MODES
from media.filters import parse_filter_list
from pipeline.args import (
    OneLineParser,
    check_listen_address,
    fps_arg,
    metres_arg,
    parse_hostport,
    positive_int,
    quality_arg,
    ranged,
)
from pipeline.config import Config, MetricOptions, hue_subsampling

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
    g.add_argument("--width", type=positive_int, default=1280, help="frame width (default 1280)")
    g.add_argument("--height", type=positive_int, default=720, help="frame height (default 720)")
    g.add_argument("--fps", type=fps_arg, default=30.0, help="frames per second (default 30)")
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
    imu = g.add_mutually_exclusive_group()
    imu.add_argument("--imu", dest="imu", action="store_const", const="on", default="auto",
                     help="publish the camera's accelerometer and gyroscope (default: when "
                     "the source has them; a source without one is noted in the log)")
    imu.add_argument("--no-imu", dest="imu", action="store_const", const="off",
                     help="do not read the IMU")
    g.add_argument("--max-frame-bytes", type=positive_int, default=8 * 1024 * 1024,
                   help="largest JPEG accepted from a tcp:// pusher (default 8 MiB)")


def add_encoder_args(p: argparse.ArgumentParser) -> None:
    """Options of the JPEG encoder and depth rendering."""
    g = p.add_argument_group("encoding")
    g.add_argument("--quality", type=quality_arg, default=80,
                   help="JPEG quality 1-100 (default 80)")
    g.add_argument("--depth-mode", choices=DEPTH_MODES, default="colormap",
                   help="how depth is drawn: colormap (Turbo), gray (linear 8-bit), or Intel's "
                   "hue colorization that clients decode back to metres: hue (linear), "
                   "hue-inverse (disparity), hue-log (1%% accurate over 0.3-10 m)")
    g.add_argument("--depth-min", type=metres_arg, default=0.3,
                   help="nearest depth shown, metres (default 0.3)")
    g.add_argument("--depth-max", type=metres_arg, default=6.0,
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


def pipeline_parser(prog: str, description: str) -> OneLineParser:
    """A parser with the pipeline's groups (source, encoding, logging); each entry point
    adds its sinks' groups."""
    p = OneLineParser(prog=prog, description=description)
    add_source_args(p)
    add_encoder_args(p)
    add_common_args(p)
    return p


def pipeline_config(p: argparse.ArgumentParser, ns: argparse.Namespace) -> Config:
    """The pipeline settings from the source, encoding and logging groups, checked."""
    if ns.depth_min >= ns.depth_max:
        p.error(f"--depth-min ({ns.depth_min:g}) must be less than --depth-max "
                f"({ns.depth_max:g})")
    if ns.width > 7680 or ns.height > 4320:
        p.error(f"--width/--height {ns.width}x{ns.height} is larger than 7680x4320")
    if ns.depth_mode.startswith("hue"):
        depth_quality, subsampling = max(ns.quality, 90), hue_subsampling(ns.depth_mode)
    else:
        depth_quality, subsampling = ns.quality, "420"
    filters: tuple[str, ...] = ()
    if ns.filters:
        try:
            filters = tuple(parse_filter_list(",".join(ns.filters)))
        except ValueError as exc:
            p.error(str(exc))
    cfg = Config(
        source=ns.source, width=ns.width, height=ns.height, fps=ns.fps, quality=ns.quality,
        depth_mode=ns.depth_mode, depth_min=ns.depth_min, depth_max=ns.depth_max,
        depth_quality=depth_quality, depth_subsampling=subsampling, encoder=ns.encoder,
        serial=ns.serial, align=ns.align, rs_filters=ns.rs_filters, loop=ns.loop,
        realtime=ns.realtime, record_raw=ns.record_raw, filters=filters,
        max_frame_bytes=ns.max_frame_bytes, log_level=ns.log_level,
        metric=MetricOptions(mode=ns.metric_mode, quality=ns.metric_quality), imu=ns.imu)
    src = cfg.source
    if src.startswith("tcp://"):
        try:
            host, _ = parse_hostport(src[len("tcp://"):])
            check_listen_address(host)
        except ValueError as exc:
            p.error(f"--source {src}: {exc}")
    elif src.startswith("opencv:"):
        if len(src) == len("opencv:"):
            p.error("--source opencv: needs a device number, file or URL")
    elif src not in ("auto", "synthetic", "realsense"):
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
    from camera.realsense_device import normalize_filters  # noqa: PLC0415
    from camera.recording import RecordingSource  # noqa: PLC0415

    try:
        normalize_filters(cfg.rs_filters)
        rec = RecordingSource(cfg.source, loop=cfg.loop, realtime=cfg.realtime,
                              align=cfg.align, filters=cfg.rs_filters, imu=False)
        rec.open()
        rec.close()
    except (SourceConfigError, SourceError) as exc:
        p.error(f"--source {cfg.source}: {exc}")


def _check_realsense(p: argparse.ArgumentParser, cfg: Config) -> None:
    """Mode, filters and serial of a live camera, checked before any process starts."""
    from camera.realsense_device import (  # noqa: PLC0415
        normalize_filters,
        realsense_devices,
        validate_mode,
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
