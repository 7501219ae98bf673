"""/metrics in the Prometheus text format, through the official client library.

Counters and gauges are read from the control block and the hub at scrape time (a
custom collector), so nothing is updated per frame for them; the latency histogram's
cumulative bucket counts are kept by the hub as parts are sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from flask import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pipeline.control import Control
from web.channel import LATENCY_BUCKETS
from web.hub import FrameHub


class PipelineCollector:
    """Exports the pipeline's counters as Prometheus metric families, each sample labelled
    with its camera."""

    def __init__(self, cameras: list[tuple[str, FrameHub, Control]]) -> None:
        self.cameras = cameras

    def collect(self) -> Iterator[object]:
        cap = CounterMetricFamily("camera_frames_captured", "Frames written by capture",
                                  labels=["camera"])
        ok = GaugeMetricFamily("camera_source_ok", "1 while the source delivers frames",
                               labels=["camera"])
        by = ["camera", "stream"]
        enc = CounterMetricFamily("camera_frames_encoded", "JPEGs encoded", labels=by)
        pub = CounterMetricFamily("camera_frames_published", "Frames fanned out by the web "
                                  "process", labels=by)
        sent = CounterMetricFamily("camera_parts_sent", "Parts written to clients", labels=by)
        drops = CounterMetricFamily("camera_frames_skipped", "Encoded frames a stream's fan-out "
                                    "skipped (newest wins)", labels=by)
        viewers = GaugeMetricFamily("camera_viewers", "Connected clients", labels=by)
        hist = HistogramMetricFamily("camera_latency_seconds", "Capture-to-send latency "
                                     "of recent parts", labels=by)
        restarts = CounterMetricFamily("camera_process_restarts", "Child restarts",
                                       labels=["camera", "process"])
        for i, (camera, hub, control) in enumerate(self.cameras):
            snap = control.snapshot()
            cap.add_metric([camera], snap["frames_captured"])
            ok.add_metric([camera], snap["source_ok"])
            for name, ch in hub.channels.items():
                enc.add_metric([camera, name], snap[f"encoded_{name}"])
                pub.add_metric([camera, name], ch.frames)
                sent.add_metric([camera, name], ch.parts_sent)
                drops.add_metric([camera, name], max(snap[f"encoded_{name}"] - ch.frames, 0))
                viewers.add_metric([camera, name], ch.viewers)
                cumulative = list(accumulate(ch.lat_counts))
                buckets = [(str(b), c)
                           for b, c in zip(LATENCY_BUCKETS, cumulative, strict=False)]
                buckets.append(("+Inf", cumulative[-1]))
                hist.add_metric([camera, name], buckets, sum_value=ch.lat_sum)
            for role in ("capture", "encoder", *(("web",) if i == 0 else ())):
                restarts.add_metric([camera, role], snap[f"restarts_{role}"])
        yield from (cap, ok, enc, pub, sent, drops, viewers, hist, restarts)


def metrics_response(cameras: list[tuple[str, FrameHub, Control]],
                     extra: list[object] | None = None) -> Response:
    """One scrape of every camera (name, hub, control block); `extra`: collectors of
    optional stages, e.g. WebRTC."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(cameras))  # type: ignore[arg-type]
    for collector in extra or ():
        registry.register(collector)  # type: ignore[arg-type]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
