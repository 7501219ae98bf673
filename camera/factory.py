"""Turn the --source option into a FrameSource."""

from __future__ import annotations

import logging
import socket

from camera.base import FrameSource, SourceConfigError
from pipeline.config import Config

log = logging.getLogger(__name__)


def parse_hostport(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port); raises ValueError on nonsense."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT with a port number 0-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def check_listen_address(host: str) -> None:
    """Resolve `host` and make sure it is an address of this machine (one we can listen
    on); raises ValueError with a one-line reason otherwise."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"cannot resolve {host!r}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    reasons = []
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind(addr)  # port 0: only asks whether the address is ours
            return
        except OSError as exc:
            reasons.append(f"{addr[0]}: {exc.strerror or exc}")
    raise ValueError(f"{host!r} is not an address of this machine ({'; '.join(reasons)})")


def realsense_present() -> bool:
    """True when pyrealsense2 is importable and sees at least one device."""
    try:
        from camera.realsense import realsense_devices  # noqa: PLC0415
    except ImportError:
        return False
    return bool(realsense_devices())


def make_source(cfg: Config) -> FrameSource:
    """Build the source the configuration asks for (auto: RealSense if present)."""
    src = cfg.source
    if src == "auto":
        if realsense_present():
            src = "realsense"
        else:
            log.info("no RealSense device found: using the built-in synthetic scene "
                     "(--source synthetic)")
            src = "synthetic"
    if src == "synthetic":
        from camera.synthetic import SyntheticSource  # noqa: PLC0415

        return SyntheticSource(cfg.width, cfg.height, cfg.fps)
    if src == "realsense":
        from camera.realsense import RealSenseSource  # noqa: PLC0415

        return RealSenseSource(
            cfg.width, cfg.height, int(cfg.fps), serial=cfg.serial, align=cfg.align,
            filters=cfg.rs_filters, record_raw=cfg.record_raw,
        )
    if src.endswith((".bag", ".db3")):
        from camera.realsense import RecordingSource  # noqa: PLC0415

        return RecordingSource(src, loop=cfg.loop, realtime=cfg.realtime, align=cfg.align,
                               filters=cfg.rs_filters)
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
