"""The pipeline settings every child receives: source, size, rate and encoding.

`Config` is frozen and holds only what capture and encoding need; each sink's own options
are typed dataclasses of their role (web, push, robotics, ...), and a secret reaches only
the child that uses it. The command line that fills them lives above in `wiring/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Config:
    """Source, size, rate and encoding of one camera's pipeline, picklable for spawn."""

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
    log_level: str = "info"
    metric: MetricOptions = field(default_factory=MetricOptions)
    imu: str = "auto"  # auto: when the source has one; on: say so when it has none; off
    sync: str | None = None  # --sync: a RealSense's inter_cam_sync_mode (realsense_device)
    # One camera of several: a source that cannot start shows NO SIGNAL and is retried,
    # since its failure must not stop the other cameras (alone, it ends the run).
    retry_config: bool = False

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
