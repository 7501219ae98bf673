"""Turn the --source option into a FrameSource."""

from __future__ import annotations

import logging

from camera.base import FrameSource, SourceConfigError
from pipeline.args import parse_hostport
from pipeline.config import Config

log = logging.getLogger(__name__)


def realsense_present() -> bool:
    """True when pyrealsense2 is importable and sees at least one device."""
    try:
        from camera.realsense_device import realsense_devices  # noqa: PLC0415
    except ImportError:
        return False
    return bool(realsense_devices())


def make_source(cfg: Config) -> FrameSource:
    """Build the source the configuration asks for (auto: RealSense if present)."""
    src = cfg.source
    imu = cfg.imu != "off"
    if src == "auto":
        if realsense_present():
            src = "realsense"
        else:
            log.info("no RealSense device found: using the built-in synthetic scene "
                     "(--source synthetic)")
            src = "synthetic"
    if cfg.sync and src != "realsense":
        log.info("--sync %s: only a live RealSense has inter-camera sync; ignored for %s",
                 cfg.sync, src)
    if src == "synthetic":
        from camera.synthetic import SyntheticSource  # noqa: PLC0415

        return SyntheticSource(cfg.width, cfg.height, cfg.fps, imu=imu)
    if src == "realsense":
        from camera.realsense import RealSenseSource  # noqa: PLC0415

        return RealSenseSource(
            cfg.width, cfg.height, int(cfg.fps), serial=cfg.serial, align=cfg.align,
            filters=cfg.rs_filters, record_raw=cfg.record_raw, imu=imu, sync=cfg.sync,
        )
    if src.endswith((".bag", ".db3")):
        from camera.recording import RecordingSource  # noqa: PLC0415

        return RecordingSource(src, loop=cfg.loop, realtime=cfg.realtime, align=cfg.align,
                               filters=cfg.rs_filters, imu=imu)
    if src.startswith("tcp://"):
        from camera.tcp_ingest import TcpIngestSource  # noqa: PLC0415

        host, port = parse_hostport(src[len("tcp://"):])
        return TcpIngestSource(host, port, max_frame_bytes=cfg.max_frame_bytes)
    if src.startswith("opencv:"):
        from camera.opencv_source import OpenCVSource  # noqa: PLC0415

        return OpenCVSource(src[len("opencv:"):], loop=cfg.loop)
    raise SourceConfigError(f"unknown source {src!r}")


def raw_capacity(cfg: Config) -> int:
    """Bytes one raw-ring slot needs: BGR plus uint16 depth at the largest expected size."""
    w, h = cfg.width, cfg.height
    if cfg.source.startswith(("tcp://", "opencv:")):
        w, h = max(w, 1920), max(h, 1080)
    return w * h * 3 + w * h * 2
