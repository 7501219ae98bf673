"""One Config for every entry point, and the parser pieces every command line shares.

`Config` is what the supervisor hands each child (picklable for spawn). The command
line that fills it, with its checks against the camera and encoder packages, lives
above in `wiring/options.py`; a parser error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from robotics.options import RoboticsOptions
    from webrtc.options import WebRTCOptions



def hue_subsampling(mode: str) -> str:
    """Chroma subsampling of the hue-coded /depth stream (the /metric stream is always 4:4:4).

    hue-log decodes as accurately from 4:2:0 on smooth depth, better where depth has
    isolated holes, at ~55 % of the 4:4:4 size; hue and hue-inverse lose 1-4 points
    without full chroma. Sharp depth edges favour 4:4:4 (docs/DEPTH_HUE.md).
    """
    return "420" if mode == "hue-log" else "444"


@dataclass(frozen=True)
class MetricOptions:
    """The machine-readable depth stream (/metric): its hue coding and JPEG quality.

    Always 4:4:4 and quality 90 or more: the ruler and the point cloud read it, and full
    chroma keeps object edges within 1 % where 4:2:0 smears them (docs/DEPTH_HUE.md); its
    range is --depth-min/--depth-max.
    """

    mode: str = "hue-log"
    quality: int = 90
    subsampling: str = "444"


@dataclass
class Config:
    """Everything the capture, encoder and sink processes need, picklable for spawn."""

    source: str = "auto"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    quality: int = 80
    depth_mode: str = "colormap"
    depth_min: float = 0.3
    depth_max: float = 6.0
    depth_quality: int = 0
    depth_subsampling: str = "420"
    encoder: str = "auto"
    serial: str | None = None
    align: bool = True
    rs_filters: tuple[str, ...] = ()
    loop: bool = True
    realtime: bool = True
    record_raw: str | None = None
    filters: tuple[str, ...] = ()
    max_frame_bytes: int = 8 * 1024 * 1024
    record: str | None = None
    snapshot_on_exit: str | None = None
    display: bool = False
    host: str = "0.0.0.0"
    port: int = 5000
    log_level: str = "info"
    metric: MetricOptions = field(default_factory=MetricOptions)
    robotics: RoboticsOptions | None = None
    extra: dict = field(default_factory=dict)
    webrtc: WebRTCOptions | None = None  # --webrtc: H.264 stage and Janus children

    @property
    def streams_depth_headers(self) -> dict[str, str]:
        """Headers on every depth part telling a client how to read it back."""
        return {
            "X-Depth-Mode": self.depth_mode,
            "X-Depth-Min": f"{self.depth_min:g}",
            "X-Depth-Max": f"{self.depth_max:g}",
            "X-Depth-Units": "m",
        }

    @property
    def metric_headers(self) -> dict[str, str]:
        """Headers on every part of the metric stream: how to decode it to metres."""
        return {
            "X-Depth-Mode": self.metric.mode,
            "X-Depth-Min": f"{self.depth_min:g}",
            "X-Depth-Max": f"{self.depth_max:g}",
            "X-Depth-Units": "m",
        }

    @property
    def stream_headers(self) -> dict[str, dict[str, str]]:
        """Extra headers per stream (its parts and its snapshot)."""
        return {"depth": self.streams_depth_headers, "metric": self.metric_headers}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad value as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def ranged(cast: Callable[[str], float], lo: float, hi: float, what: str
           ) -> Callable[[str], float]:
    """An argparse type: `cast` the text and require lo <= value <= hi, else one clear line."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not lo <= value <= hi:  # also rejects NaN
            raise argparse.ArgumentTypeError(
                f"{text!r} must be between {cast(lo)!s:.10} and {cast(hi)!s:.10}")
        return value

    return parse


_BIT_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def bitrate(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type for bits per second: a number with an optional k/M/G suffix
    (decimal; "bit/s", "bps" or "b" after it is accepted), required within [lo, hi]."""

    def parse(text: str) -> int:
        t = text.strip().lower().removesuffix("bit/s").removesuffix("bps").removesuffix("b")
        mult = _BIT_SUFFIX.get(t[-1:], 1.0)
        try:
            value = float(t[:-1] if t[-1:] in _BIT_SUFFIX else t) * mult
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a bit rate (e.g. 4M, 800k)") from None
        if not lo <= value <= hi:  # also rejects NaN
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range ({_si(lo)} to {_si(hi)} bit/s)")
        return int(value)

    return parse


def _si(bps: int) -> str:
    for unit, mult in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps >= mult:
            return f"{bps / mult:g}{unit}"
    return str(bps)


_positive_int = ranged(int, 1, 1 << 31, "a whole number")
_fps = ranged(float, 0.5, 120, "a number")
_quality = ranged(int, 1, 100, "a whole number")
_metres = ranged(float, 0, 65, "a number of metres")
_port = ranged(int, 0, 65535, "a port number")


def _host(text: str) -> str:
    """An IP address (IPv6 may be bracketed) or a host name."""
    host = text.strip("[]")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
        return host
    raise argparse.ArgumentTypeError(f"{text!r} is not a host name or IP address")
