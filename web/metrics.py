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
    """Exports the pipeline's counters as Prometheus metric families."""

    def __init__(self, hub: FrameHub, control: Control) -> None:
        self.hub, self.control = hub, control

    def collect(self) -> Iterator[object]:
        snap = self.control.snapshot()
        cap = CounterMetricFamily("camera_frames_captured", "Frames written by capture")
        cap.add_metric([], snap["frames_captured"])
        yield cap
        ok = GaugeMetricFamily("camera_source_ok", "1 while the source delivers frames")
        ok.add_metric([], snap["source_ok"])
        yield ok
        enc = CounterMetricFamily("camera_frames_encoded", "JPEGs encoded", labels=["stream"])
        pub = CounterMetricFamily("camera_frames_published", "Frames fanned out by the web "
                                  "process", labels=["stream"])
        sent = CounterMetricFamily("camera_parts_sent", "Parts written to clients",
                                   labels=["stream"])
        drops = CounterMetricFamily("camera_frames_skipped", "Encoded frames a stream's fan-out "
                                    "skipped (newest wins)", labels=["stream"])
        viewers = GaugeMetricFamily("camera_viewers", "Connected clients", labels=["stream"])
        hist = HistogramMetricFamily("camera_latency_seconds", "Capture-to-send latency "
                                     "of recent parts", labels=["stream"])
        for name, ch in self.hub.channels.items():
            enc.add_metric([name], snap[f"encoded_{name}"])
            pub.add_metric([name], ch.frames)
            sent.add_metric([name], ch.parts_sent)
            drops.add_metric([name], max(snap[f"encoded_{name}"] - ch.frames, 0))
            viewers.add_metric([name], ch.viewers)
            cumulative = list(accumulate(ch.lat_counts))
            buckets = [(str(b), c) for b, c in zip(LATENCY_BUCKETS, cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            hist.add_metric([name], buckets, sum_value=ch.lat_sum)
        yield from (enc, pub, sent, drops, viewers, hist)
        restarts = CounterMetricFamily("camera_process_restarts", "Child restarts",
                                       labels=["process"])
        for role in ("capture", "encoder", "web"):
            restarts.add_metric([role], snap[f"restarts_{role}"])
        yield restarts


def metrics_response(hub: FrameHub, control: Control, extra: list[object] | None = None
                     ) -> Response:
    """One scrape (`extra`: collectors of optional stages, e.g. WebRTC)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(hub, control))  # type: ignore[arg-type]
    for collector in extra or ():
        registry.register(collector)  # type: ignore[arg-type]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
