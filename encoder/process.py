"""The encoder process: newest raw frame in, one JPEG per watched stream out.

It reads the raw ring in place (no copy), encodes color and depth in parallel threads
(libjpeg-turbo releases the GIL), and checks the slot's seqlock afterwards so a frame
overwritten mid-encode is dropped rather than sent torn. Streams nobody watches are
not encoded; with no viewers at all it only wakes up to notice new frames.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

import cv2
import numpy as np

from encoder.shaping import AS_CONFIGURED, Shape, apply_shape, requested
from media.depth import render_depth_bgrx
from media.filters import FilterChain
from media.jpeg import JpegCodec
from media.nosignal import render_no_depth
from pipeline.child import Child, drain, set_nonblocking_writer, wake
from pipeline.config import Config
from pipeline.control import STREAMS, Control
from pipeline.shm import FLAG_HAS_DEPTH, FLAG_NO_SIGNAL, FrameRing, SlotMeta, TornRead

log = logging.getLogger("encoder")

SHAPED = ("color", "depth", "combined")
"""Streams a push may ask to shrink (never /metric, whose quality keeps depth decodable)."""


class StreamStats:
    """Per-stream encoded-fps and encode-time bookkeeping into the control block."""

    def __init__(self, control: Control, stream: str) -> None:
        self.control, self.stream = control, stream
        self.t0 = time.monotonic()
        self.n = 0

    def record(self, encode_s: float) -> None:
        c, s = self.control, self.stream
        c.add(f"encoded_{s}")
        c[f"encode_ms_{s}"] = encode_s * 1000.0
        self.n += 1
        now = time.monotonic()
        if now - self.t0 >= 1.0:
            c[f"encode_fps_{s}"] = self.n / (now - self.t0)
            self.t0, self.n = now, 0

    def idle(self) -> None:
        if time.monotonic() - self.t0 >= 1.0:
            self.control[f"encode_fps_{self.stream}"] = 0.0
            self.t0, self.n = time.monotonic(), 0


class FrameEncoder:
    """Turns one raw frame into JPEGs for the requested streams."""

    def __init__(self, cfg: Config, codec: JpegCodec, pool: ThreadPoolExecutor,
                 chain: FilterChain, control: Control | None = None) -> None:
        self.cfg, self.codec, self.pool, self.chain = cfg, codec, pool, chain
        self.control = control
        self._no_depth: dict[tuple[int, int], np.ndarray] = {}
        self._bgrx: np.ndarray | None = None  # depth picture, reused frame to frame
        self._metric_bgrx: np.ndarray | None = None  # metric picture (another thread's)
        self._blank: dict[tuple[int, int], np.ndarray] = {}
        m = cfg.metric
        # The metric JPEG equals the depth JPEG when both use the same coding: encode once.
        self._metric_is_depth = (cfg.depth_mode, cfg.depth_quality, cfg.depth_subsampling) == (
            m.mode, m.quality, m.subsampling)

    def _depth_image(self, meta: SlotMeta, view: memoryview, color: np.ndarray) -> np.ndarray:
        """The depth picture to encode: BGRX from the depth plane, or a BGR stand-in."""
        h, w = meta.height, meta.width
        if meta.flags & FLAG_NO_SIGNAL:
            return color
        if not meta.flags & FLAG_HAS_DEPTH:
            key = (w, h)
            if key not in self._no_depth:
                self._no_depth[key] = render_no_depth(w, h)
            return self._no_depth[key]
        depth = np.ndarray((h, w), np.uint16, buffer=view, offset=meta.len0)
        if self._bgrx is None or self._bgrx.shape[:2] != (h, w):
            self._bgrx = np.empty((h, w, 4), np.uint8)
        cfg = self.cfg
        return render_depth_bgrx(depth, cfg.depth_mode, cfg.depth_min, cfg.depth_max,
                                 meta.depth_scale or 0.001, out=self._bgrx)

    def _metric_image(self, meta: SlotMeta, view: memoryview) -> np.ndarray:
        """Depth in the metric stream's hue coding; all black (invalid) without depth."""
        h, w = meta.height, meta.width
        if meta.flags & FLAG_NO_SIGNAL or not meta.flags & FLAG_HAS_DEPTH:
            if (w, h) not in self._blank:
                self._blank[(w, h)] = np.zeros((h, w, 3), np.uint8)
            return self._blank[(w, h)]
        depth = np.ndarray((h, w), np.uint16, buffer=view, offset=meta.len0)
        if self._metric_bgrx is None or self._metric_bgrx.shape[:2] != (h, w):
            self._metric_bgrx = np.empty((h, w, 4), np.uint8)
        cfg = self.cfg
        return render_depth_bgrx(depth, cfg.metric.mode, cfg.depth_min, cfg.depth_max,
                                 meta.depth_scale or 0.001, out=self._metric_bgrx)

    def _metric_jpeg(self, meta: SlotMeta, view: memoryview) -> tuple[bytes, int, int]:
        """The metric JPEG: never shaped by a sink, since its quality keeps depth decodable."""
        m = self.cfg.metric
        jpeg = self.codec.encode(self._metric_image(meta, view), m.quality, m.subsampling)
        return jpeg, meta.width, meta.height

    def encode(self, meta: SlotMeta, view: memoryview,
               wanted: list[str]) -> dict[str, tuple[bytes, int, int]]:
        """(JPEG bytes, width, height) for each wanted stream of this frame.

        Color goes to a pool thread first; this thread meanwhile renders depth and encodes
        it itself, so the two encodes overlap at the cost of one thread hand-off.
        """
        cfg = self.cfg
        color = np.ndarray((meta.height, meta.width, 3), np.uint8, buffer=view)
        if self.chain.names and not meta.flags & FLAG_NO_SIGNAL:
            color = self.chain.apply(color)
        jobs: dict[str, Future[tuple[bytes, int, int]]] = {}
        # A sink's requests, read once so every use within this frame agrees.
        shapes = {s: requested(self.control, s) for s in SHAPED if s in wanted}
        share = (self._metric_is_depth and "depth" in wanted and meta.flags & FLAG_HAS_DEPTH
                 and not shapes["depth"])
        if "metric" in wanted and not share:
            jobs["metric"] = self.pool.submit(self._metric_jpeg, meta, view)
        if "color" in wanted:
            jobs["color"] = self.pool.submit(self._jpeg, shapes["color"], color, cfg.quality,
                                             "420")
        out: dict[str, tuple[bytes, int, int]] = {}
        try:
            if "depth" in wanted or "combined" in wanted:
                depth_img = self._depth_image(meta, view, color)
                if "combined" in wanted:
                    jobs["combined"] = self.pool.submit(self._combined, color, depth_img,
                                                        shapes["combined"])
                if "depth" in wanted:
                    out["depth"] = self._jpeg(shapes["depth"], depth_img, cfg.depth_quality,
                                              cfg.depth_subsampling,
                                              nearest=cfg.depth_mode.startswith("hue"))
        finally:
            wait(jobs.values())  # nothing may still read the frame or the reused buffer
        out.update({name: f.result() for name, f in jobs.items()})
        if "metric" in wanted and share:
            out["metric"] = out["depth"]
        return out

    def _jpeg(self, shape: Shape, img: np.ndarray, quality: int, subsampling: str, *,
              nearest: bool = False) -> tuple[bytes, int, int]:
        """Encode at the quality and width a sink asked for (encoder/shaping.py)."""
        img, quality = apply_shape(shape, img, quality, nearest=nearest)
        return self.codec.encode(img, quality, subsampling), img.shape[1], img.shape[0]

    def _combined(self, color: np.ndarray, depth_img: np.ndarray,
                  shape: Shape = AS_CONFIGURED) -> tuple[bytes, int, int]:
        depth_img = depth_img[:, :, :3]  # BGRX -> BGR view; hstack copies anyway
        if depth_img.shape[0] != color.shape[0]:
            scale = color.shape[0] / depth_img.shape[0]
            depth_img = cv2.resize(np.ascontiguousarray(depth_img),
                                   (int(depth_img.shape[1] * scale), color.shape[0]))
        return self._jpeg(shape, np.hstack((color, depth_img)), self.cfg.quality, "420")


def encoder_main(child: Child, backend: str) -> None:
    """The encoder child: each new raw frame to the JPEGs somebody watches, encoded once."""
    handles = child.handles
    raw = FrameRing.attach(handles.raw)
    rings = {s: FrameRing.attach(n) for s, n in handles.jpeg.items()}
    set_nonblocking_writer(handles.jpeg_wake_w)
    set_nonblocking_writer(handles.tap_wake_w)
    for name, (_, w) in handles.sink_wakes.items():
        if name != "h264":
            set_nonblocking_writer(w)
    codec = JpegCodec(backend)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="jpeg") as pool:
        enc = FrameEncoder(child.cfg, codec, pool, FilterChain(list(child.cfg.filters)),
                           child.control)
        stats = {s: StreamStats(child.control, s) for s in STREAMS}
        _encode_loop(raw, rings, child, enc=enc, stats=stats)


def _encode_loop(raw: FrameRing, rings: dict[str, FrameRing], child: Child, *,
                 enc: FrameEncoder, stats: dict[str, StreamStats]) -> None:
    control, handles, stop = child.control, child.handles, child.stop
    last = 0
    torn = 0
    settings_version = -1.0
    while not stop.is_set():
        child.beat()
        if handles.raw_wake_r.poll(0.5):
            drain(handles.raw_wake_r)
        if control["settings_version"] != settings_version:
            settings_version = control["settings_version"]
            names = control.settings().get("filters")
            if names is not None:
                try:
                    enc.chain.set(names)
                except ValueError as exc:
                    log.warning("filters unchanged: %s", exc)
        counter, slot = raw.latest()
        wanted = [s for s in STREAMS if control.viewers(s) > 0]
        for s in STREAMS:
            if s not in wanted:
                stats[s].idle()
        if counter == last or not wanted:
            last = counter if not wanted else last
            continue
        try:
            seq, meta = raw.read_meta(slot, counter)
        except TornRead:
            continue
        t0 = time.time()
        try:
            out = enc.encode(meta, raw.payload(slot), wanted)
        except ValueError as exc:
            log.warning("frame %d could not be encoded: %s", meta.frame_no, exc)
            last = counter
            continue
        t1 = time.time()
        if not raw.still_valid(slot, seq):
            torn += 1
            log.debug("frame %d overwritten while encoding; dropped (%d so far)",
                      meta.frame_no, torn)
            continue
        last = counter
        for name, (jpeg, width, height) in out.items():
            ring = rings[name]
            if len(jpeg) > ring.capacity:
                log.warning("%s JPEG of %d bytes exceeds the slot (%d); dropped", name,
                            len(jpeg), ring.capacity)
                continue
            ring.publish(jpeg, frame_no=meta.frame_no, ts_capture=meta.ts_capture,
                         ts_aux1=t0, ts_aux2=t1, width=width, height=height,
                         flags=meta.flags)
            stats[name].record(t1 - t0)
        wake(handles.jpeg_wake_w)
        wake(handles.tap_wake_w)
        for name, (_, w) in handles.sink_wakes.items():
            if name != "h264":  # the H.264 stage reads the raw ring: capture wakes it
                wake(w)
