"""What the command line says about the push children: the video push and the GPS.

Kept apart from the pushers so the plan (wiring/plan.py) and the supervisor can name
these options without importing sockets, TLS or the GPS readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from encoder.options import H264Options


@dataclass(frozen=True)
class PushOptions:
    """What app_https_client.py's command line says about the video push."""

    url: str
    stream: str = "combined"
    fmt: str = "mpjpeg"
    retry: float = 5.0
    max_retries: int | None = None
    ca_file: str | None = None
    insecure: bool = False
    adapt: bool = True
    max_bitrate: float | None = None  # bits/s
    max_quality: int = 80
    min_quality: int = 30
    min_width: int = 320
    h264: H264Options = field(default_factory=H264Options)  # --format h264: top rate, GOP
    depth: bool = False  # --depth: the depth video as a second stream of the TS


@dataclass(frozen=True)
class GpsOptions:
    """What the command line says about GPS: where fixes come from and go to."""

    spec: str
    url: str
    interval: float = 1.0
    ca_file: str | None = None
    insecure: bool = False
