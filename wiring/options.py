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
import re
from dataclasses import replace
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
        "--source", action="append", metavar="[NAME=]SPEC",
        help="auto (every RealSense attached, else the built-in synthetic scene), "
        "synthetic, realsense, realsense:SERIAL, a recording PATH.bag or PATH.db3, "
        "tcp://HOST:PORT (listen for a raw MJPEG pusher), or opencv:DEVICE_OR_URL_OR_FILE "
        "(default: auto). Repeat it to serve several cameras, each under /cam/NAME/; NAME "
        "([a-z0-9_-], up to 32) defaults to the serial, the file's stem, or synthetic, "
        "synthetic-2, ...",
    )
    g.add_argument("--width", type=positive_int, default=1280, help="frame width (default 1280)")
    g.add_argument("--height", type=positive_int, default=720, help="frame height (default 720)")
    g.add_argument("--fps", type=fps_arg, default=30.0, help="frames per second (default 30)")
    g.add_argument("--serial", help="RealSense serial number, to choose among several cameras")
    g.add_argument("--sync", action="append", metavar="[NAME=]MODE",
                   help="a RealSense's inter-camera sync: master, slave, full-slave, genlock "
                   "or default (NAME= picks a camera, default the first); repeat per camera")
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


NAME_RE = re.compile(r"[a-z0-9_-]{1,32}")


def split_source(text: str) -> tuple[str | None, str]:
    """`[NAME=]SPEC` -> (NAME or None, SPEC): text before the first `=` is a NAME only when
    it has no `:` or `/`, so `opencv:rtsp://host/x?ch=1` stays a plain SPEC."""
    head, sep, rest = text.partition("=")
    if sep and ":" not in head and "/" not in head:
        return head, rest
    return None, text


def default_name(spec: str, serial: str | None) -> str:
    """A camera's name when none is given: its serial, its recording's stem, or its kind."""
    if serial:
        base = serial
    elif spec.endswith((".bag", ".db3")):
        base = Path(spec).stem
    elif spec.startswith("tcp://"):
        base = "tcp-" + spec.rsplit(":", 1)[-1]
    elif spec.startswith("opencv:"):
        base = "opencv"
    else:
        base = "synthetic" if spec in ("auto", "synthetic") else spec
    base = re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-")[:32]
    return base or "camera"


def _expand_auto() -> list[tuple[str | None, str, str | None]]:
    """`auto`: every RealSense attached (by serial), else the synthetic scene (the capture
    child says so)."""
    from camera.realsense_device import realsense_devices  # noqa: PLC0415

    serials = [d["serial"] for d in realsense_devices() if d.get("serial")]
    if not serials:
        return [(None, "auto", None)]
    return [(None, "realsense", s) for s in serials]


def parse_sources(p: argparse.ArgumentParser, values: list[str] | None,
                  serial: str | None = None) -> list[tuple[str, str, str | None]]:
    """Every `--source [NAME=]SPEC` as (name, spec, serial), names unique and valid, each
    RealSense serial named once; an error is one line and exit code 2."""
    raw: list[tuple[str | None, str, str | None]] = []
    for text in values or ["auto"]:
        name, spec = split_source(text)
        if name is not None and not NAME_RE.fullmatch(name):
            p.error(f"--source {text}: NAME {name!r} must be 1-32 of a-z, 0-9, _ and -")
        if not spec:
            p.error(f"--source {text}: no source after the NAME")
        sn = None
        if spec.startswith("realsense:"):
            spec, sn = "realsense", spec[len("realsense:"):]
            if not sn:
                p.error(f"--source {text}: realsense: needs a serial number")
        if spec == "auto" and name is None and len(values or []) <= 1:
            raw.extend(_expand_auto())
        else:
            raw.append((name, spec, sn))
    if len(raw) > 1 and serial:
        p.error("--serial picks one camera: with several sources use --source realsense:SERIAL")
    given = [n for n, _, _ in raw if n is not None]
    for n in given:
        if given.count(n) > 1:
            p.error(f"--source: the NAME {n!r} is given twice")
    serials = [sn for _, _, sn in raw if sn]
    for sn in serials:
        if serials.count(sn) > 1:
            p.error(f"--source: two sources name the RealSense {sn}")
    out: list[tuple[str, str, str | None]] = []
    taken = set(given)
    for given_name, spec, sn in raw:
        name = given_name
        if name is None:
            base = default_name(spec, sn)
            name, i = base, 2
            while name in taken:
                name, i = f"{base[:29]}-{i}", i + 1
        taken.add(name)
        out.append((name, spec, sn or (serial if len(raw) == 1 else None)))
    return out


def pipeline_cameras(p: argparse.ArgumentParser, ns: argparse.Namespace
                     ) -> list[tuple[str, Config]]:
    """Each camera's name and pipeline settings, from the source, encoding and logging
    groups, checked; the global size and rate apply to every live source."""
    sources = parse_sources(p, ns.source, ns.serial)
    if len(sources) > 1 and ns.record_raw:
        p.error("--record-raw records one camera: use it with one --source")
    base = _base_config(p, ns)
    syncs = _sync_modes(p, ns.sync, [name for name, _, _ in sources])
    out = []
    for name, spec, serial in sources:
        cfg = replace(base, source=spec, serial=serial, sync=syncs.get(name),
                      retry_config=len(sources) > 1)
        size = _check_source(p, cfg)
        if size is not None:
            cfg = replace(cfg, width=size[0], height=size[1])
        out.append((name, cfg))
    logging.getLogger().setLevel(base.log_level.upper())
    return out


def _sync_modes(p: argparse.ArgumentParser, values: list[str] | None,
                names: list[str]) -> dict[str, str]:
    """Each camera's --sync MODE from `[NAME=]MODE` values (no NAME: the first camera)."""
    from camera.realsense_device import SYNC_MODES  # noqa: PLC0415

    out: dict[str, str] = {}
    for text in values or ():
        name, sep, mode = text.rpartition("=")
        name = name if sep else names[0]
        if name not in names:
            p.error(f"--sync {text}: no camera named {name!r} (cameras: {', '.join(names)})")
        if mode not in SYNC_MODES:
            p.error(f"--sync {text}: MODE must be one of {', '.join(SYNC_MODES)}")
        if name in out:
            p.error(f"--sync: camera {name!r} is given twice")
        out[name] = mode
    return out


def pipeline_config(p: argparse.ArgumentParser, ns: argparse.Namespace) -> Config:
    """The pipeline settings of a command that serves one camera."""
    cams = pipeline_cameras(p, ns)
    if len(cams) > 1:
        p.error(f"--source: {p.prog} takes one source")
    return cams[0][1]


def _base_config(p: argparse.ArgumentParser, ns: argparse.Namespace) -> Config:
    """The settings every camera shares, checked."""
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
    return Config(
        source="auto", width=ns.width, height=ns.height, fps=ns.fps, quality=ns.quality,
        depth_mode=ns.depth_mode, depth_min=ns.depth_min, depth_max=ns.depth_max,
        depth_quality=depth_quality, depth_subsampling=subsampling, encoder=ns.encoder,
        serial=ns.serial, align=ns.align, rs_filters=ns.rs_filters, loop=ns.loop,
        realtime=ns.realtime, record_raw=ns.record_raw, filters=filters,
        max_frame_bytes=ns.max_frame_bytes, log_level=ns.log_level,
        metric=MetricOptions(mode=ns.metric_mode, quality=ns.metric_quality), imu=ns.imu)


def _check_source(p: argparse.ArgumentParser, cfg: Config) -> tuple[int, int] | None:
    """One camera's source, checked before any process starts; a recording's own size."""
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
            p.error(f"--source {src!r}: expected auto, synthetic, realsense, "
                    "realsense:SERIAL, PATH.bag, PATH.db3, tcp://HOST:PORT or opencv:DEVICE")
        if not Path(src).is_file():
            p.error(f"--source {src}: no such recording file")
        return _check_recording(p, cfg)
    if src == "realsense" or cfg.serial or cfg.rs_filters:
        _check_realsense(p, cfg)
    return None


def _check_recording(p: argparse.ArgumentParser, cfg: Config) -> tuple[int, int]:
    """Open the recording once here, so a corrupt file is one line and exit code 2; its
    color size, which it keeps whatever --width/--height say."""
    from camera.realsense_device import normalize_filters  # noqa: PLC0415
    from camera.recording import RecordingSource  # noqa: PLC0415

    try:
        normalize_filters(cfg.rs_filters)
        rec = RecordingSource(cfg.source, loop=cfg.loop, realtime=cfg.realtime,
                              align=cfg.align, filters=cfg.rs_filters, imu=False)
        rec.open()
        size = rec.info()["width"], rec.info()["height"]
        rec.close()
    except (SourceConfigError, SourceError) as exc:
        p.error(f"--source {cfg.source}: {exc}")
    return size


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
            problem = (f"RealSense {cfg.serial}: no device with that serial number "
                       f"(found: {', '.join(found) or 'none'})")
            if not cfg.retry_config:
                p.error(problem)
            # One camera of several: it shows NO SIGNAL until it is plugged in.
            logging.getLogger("app").warning("%s; waiting for it", problem)
