"""One run's plan: the pipeline settings and each role's typed options, nothing untyped.

The entry points fill a `Plan` from their command lines; `wiring/launch.py` turns it into
children, each given the pipeline settings, its handles and its own options only.
"""

from __future__ import annotations

from dataclasses import dataclass

from encoder.options import DepthVideoOptions, H264Options
from pipeline.config import Config
from push.options import GpsOptions, PushOptions
from robotics.options import RoboticsOptions
from sinks.tap import TapOptions
from web.options import WebOptions
from webrtc.options import WebRTCOptions


@dataclass(frozen=True)
class Camera:
    """One camera of the run: its name (its routes are under /cam/NAME/), pipeline, and
    its --record/--snapshot-on-exit."""

    name: str
    pipeline: Config
    tap: TapOptions | None = None


@dataclass(frozen=True)
class Plan:
    """What one run starts: the pipeline (the first camera's), then the sinks the command
    line asked for, then any further cameras (each its own capture, encoders and rings)."""

    pipeline: Config
    web: WebOptions | None = None
    tap: TapOptions | None = None
    display: bool = False
    h264: H264Options | None = None  # the H.264 stage's settings, when one runs
    depth_video: DepthVideoOptions | None = None  # the depth-video stage's, when one runs
    webrtc: WebRTCOptions | None = None
    robotics: RoboticsOptions | None = None
    push: PushOptions | None = None
    gps: GpsOptions | None = None
    name: str = "camera"  # the first camera's name
    more_cameras: tuple[Camera, ...] = ()
    hotplug: bool = False  # `--source auto`: cameras plugged in later are served too

    @property
    def cameras(self) -> tuple[Camera, ...]:
        """Every camera, the first (the unprefixed routes and every sink) first."""
        return (Camera(self.name, self.pipeline), *self.more_cameras)

    @property
    def readers(self) -> tuple[str, ...]:
        """Sink children that read the rings through wake-up pipes of their own."""
        return self.robotics.children() if self.robotics is not None else ()
