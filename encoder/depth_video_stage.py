"""The depth-video stage: newest raw depth in, one 10-bit H.264 access unit out, for every
/depth-video client and the push.

A child of its own beside the JPEG encoder and the colour H.264 stage, so its cost and
any crash stay here. It encodes only while the web counts clients of /depth-video
(`dv_viewers`) or a push carries it (`sink_dv`); each access unit goes into the
depth-video ring with the frame's number and capture time, and the readers are woken.
Depth is mapped to 10-bit codes by media/depthcode.py over --depth-min/--depth-max; a
frame without depth (NO SIGNAL, a source without a depth stream) is all "no depth".
Every keyframe carries the mapping, and the camera's intrinsics, in an SEI
(media/depth_video.py), so a recorded stream reads as metres and points anywhere.
A keyframe comes every `gop` frames, when watching starts, and when the web or the push
asks for one (`dv_keyframe_requests`, `push_dv_keyframes`: a new client, a reconnect),
at most one per KEYFRAME_MIN_GAP_S, a request inside the gap served at its end.
"""

from __future__ import annotations

import logging
import select
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from encoder.options import DepthVideoOptions
from encoder.stats import StageStats
from media.depth_video import DepthVideoEncoder, VideoSettings, mapping_sei, with_mapping
from media.depthcode import INVALID_CODE, DepthCoder, mapping_doc
from media.geometry import camera_model
from pipeline.child import Child, drain, set_nonblocking_writer, wake
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_HAS_DEPTH, FLAG_KEYFRAME, FLAG_NO_SIGNAL, FrameRing, TornRead

log = logging.getLogger("depthvideo")

KEYFRAME_MIN_GAP_S = 0.3
"""Keyframes for a burst of new clients come at most this often (each is ~10 P-frames)."""


class DepthVideoStage:
    """Reads the raw ring's depth, encodes while watched, publishes to the depth-video ring."""

    def __init__(self, cfg: Config, opts: DepthVideoOptions, raw: FrameRing, out: FrameRing,
                 control: Control, *, notify: Connection | None = None) -> None:
        self.cfg, self.opts = cfg, opts
        self.raw, self.out, self.control, self.notify = raw, out, control, notify
        self.enc: DepthVideoEncoder | None = None
        self.coder: DepthCoder | None = None
        self.stats = StageStats(control, "dv")
        self.last = 0
        self.watching = False
        self.requests = control["dv_keyframe_requests"] + control["push_dv_keyframes"]
        self.last_forced = 0.0
        self.pending_key = False

    def _coder(self, scale: float) -> DepthCoder:
        if self.coder is None or self.coder.depth_scale != scale:
            self.coder = DepthCoder(self.cfg.depth_min, self.cfg.depth_max, scale)
        return self.coder

    def _encoder(self, w: int, h: int) -> DepthVideoEncoder:
        if self.enc is None or (self.enc.width, self.enc.height) != (w, h):
            o = self.opts
            self.enc = DepthVideoEncoder(w, h, self.cfg.fps, VideoSettings(
                bitrate=o.bitrate, crf=o.crf, gop=o.gop))
            log.info("depth video %dx%d: H.264 High 10, crf %g under %d bit/s, keyframe "
                     "every %d frames", w, h, o.crf, o.bitrate, o.gop)
        return self.enc

    def _mapping(self) -> bytes:
        """The SEI of every keyframe: the mapping, and the intrinsics where known."""
        doc: dict[str, Any] = mapping_doc(self.cfg.depth_min, self.cfg.depth_max)
        model = camera_model(self.control.info())
        if model is not None:
            doc["intrinsics"] = model["intrinsics"]
        return mapping_sei(doc)

    def _keyframe_wanted(self) -> None:
        """Turn the web's requests into at most one forced keyframe per gap."""
        n = self.control["dv_keyframe_requests"] + self.control["push_dv_keyframes"]
        if n != self.requests:
            self.requests = n
            self.pending_key = True
        if self.enc is None:
            self.pending_key = False  # a new encoder starts with a keyframe anyway
            return
        now = time.monotonic()
        if self.pending_key and now - self.last_forced >= \
                KEYFRAME_MIN_GAP_S:
            self.enc.force_keyframe()
            self.last_forced, self.pending_key = now, False

    def step(self) -> None:
        """One wake-up: the newest raw frame, encoded if someone watches."""
        watching = self.control["dv_viewers"] + self.control["sink_dv"] > 0
        if watching and not self.watching and self.enc is not None:
            self.enc.force_keyframe()
        self.watching = watching
        if not watching:
            self.stats.idle()
            self.last = self.raw.counter()
            return
        self._keyframe_wanted()
        counter, slot = self.raw.latest()
        if counter in (self.last, 0):
            return
        try:
            seq, meta = self.raw.read_meta(slot, counter)
        except TornRead:
            return
        w, h = meta.width & ~1, meta.height & ~1
        t0 = time.time()
        has_depth = (meta.flags & FLAG_HAS_DEPTH and not meta.flags & FLAG_NO_SIGNAL
                     and meta.len1 == meta.width * meta.height * 2
                     and meta.len0 + meta.len1 <= self.raw.capacity)
        if has_depth:
            depth = np.ndarray((meta.height, meta.width), np.uint16,
                               buffer=self.raw.payload(slot), offset=meta.len0)
            codes = self._coder(meta.depth_scale or 0.001).video_codes(depth[:h, :w])
        else:
            codes = np.full((h, w), INVALID_CODE, np.uint16)
        if not self.raw.still_valid(slot, seq):
            return  # lapped by capture while reading: take the next newest
        self.last = counter
        enc = self._encoder(w, h)
        for au in enc.encode(codes):
            data = with_mapping(au.data, self._mapping()) if au.keyframe else au.data
            t1 = time.time()
            if len(data) > self.out.capacity:
                log.warning("depth access unit of %d bytes exceeds the slot (%d); dropped",
                            len(data), self.out.capacity)
                enc.force_keyframe()
                continue
            self.out.publish(data, frame_no=meta.frame_no, ts_capture=meta.ts_capture,
                             ts_aux1=t0, ts_aux2=t1, width=w, height=h,
                             flags=FLAG_KEYFRAME if au.keyframe else 0)
            if self.notify is not None:
                wake(self.notify)
            self.stats.record(len(data), au.keyframe, t1 - t0)


def depth_video_main(child: Child, opts: DepthVideoOptions) -> None:
    """The depth-video child: an access unit per new depth frame while /depth-video is read."""
    handles, control = child.handles, child.control
    raw = FrameRing.attach(handles.raw)
    out = FrameRing.attach(handles.depth_video)
    notify = handles.depth_video_wake_w
    if notify is not None:
        set_nonblocking_writer(notify)
    stage = DepthVideoStage(child.cfg, opts, raw, out, control, notify=notify)
    wake_r = handles.sink_wakes["depthvideo"][0]
    try:
        while not child.stop.is_set():
            child.beat()
            try:
                ready, _, _ = select.select([wake_r.fileno()], [], [], 0.5)
            except InterruptedError:
                continue
            if ready:
                drain(wake_r)
            stage.step()
    finally:
        control["dv_fps"] = control["dv_bps"] = 0.0
        out.close()
        raw.close()
