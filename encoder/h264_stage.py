"""The H.264 stage: newest raw color frame in, one access unit per frame out, for everyone.

A child of its own, beside the JPEG encoder, so a crash here never touches the MJPEG
viewers. It encodes only while something consumes H.264 (WebRTC viewers counted by the
Janus child, or a sink announcing itself in `sink_h264`); each access unit goes into the
H.264 ring (capture time, keyframe flag) for any consumer, and out as RTP to Janus.
A keyframe comes every `gop` frames, when consumption starts or grows, whenever
Janus asks over RTCP (PLI/FIR: a new viewer, a lost packet) and whenever the push bumps
`push_h264_keyframes` (it (re)connected). The push may also ask for a lower bit rate
(`push_h264_bitrate`, what its link carries); libx264 takes it on the next frame.
"""

from __future__ import annotations

import logging
import select
import time
from multiprocessing.connection import Connection

import numpy as np

from encoder.options import H264Options, RtpTarget
from encoder.stats import StageStats
from media.h264 import H264Encoder
from media.rtp import RtpSender
from pipeline.child import Child, drain, set_nonblocking_writer, wake
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_KEYFRAME, FrameRing, TornRead

log = logging.getLogger("h264")

KEYFRAME_MIN_GAP_S = 0.3  # answer a burst of PLIs with one keyframe


class H264Stage:
    """Reads the raw ring, encodes, publishes to the H.264 ring and to RTP."""

    def __init__(self, cfg: Config, opts: H264Options, raw: FrameRing, out: FrameRing,
                 control: Control, *, rtp: RtpSender | None,
                 notify: Connection | None = None) -> None:
        self.cfg, self.opts = cfg, opts
        self.notify = notify  # woken after each access unit (readers of the ring)
        self.raw, self.out, self.control, self.rtp = raw, out, control, rtp
        self.enc: H264Encoder | None = None
        self.stats = StageStats(control, "h264")
        self.last = 0
        self.consumers = 0
        self._last_forced = 0.0
        self._key_requests = control["push_h264_keyframes"]

    def consumers_now(self) -> int:
        """WebRTC viewers plus every sink announcing itself in a `sink_h264*` field."""
        snap = self.control.snapshot()
        return int(snap["webrtc_viewers"] + sum(v for k, v in snap.items()
                                                if k.startswith("sink_h264")))

    def _force(self, why: str) -> None:
        now = time.monotonic()
        if self.enc is not None and now - self._last_forced >= KEYFRAME_MIN_GAP_S:
            self._last_forced = now
            self.enc.force_keyframe()
            log.debug("keyframe: %s", why)

    def _open(self, w: int, h: int) -> None:
        self.enc = H264Encoder(w, h, self.cfg.fps, self.opts.bitrate, self.opts.gop,
                               vbv_seconds=self.opts.vbv_seconds)
        log.info("H.264 %dx%d, %d bit/s, keyframe every %d frames", w, h,
                 self.opts.bitrate, self.opts.gop)
        self._apply_bitrate()

    def _apply_bitrate(self) -> None:
        """The push's requested bit rate (0: the configured one), never above the latter."""
        want = self.control["push_h264_bitrate"]
        target = int(min(want, self.opts.bitrate)) if want > 0 else self.opts.bitrate
        if self.enc is not None and target != self.enc.bitrate:
            log.debug("bit rate %d -> %d", self.enc.bitrate, target)
            self.enc.set_bitrate(target)
        self.control["h264_bitrate"] = self.enc.bitrate if self.enc is not None else target

    def _keyframe_requested(self) -> bool:
        """True once per bump of `push_h264_keyframes`."""
        n = self.control["push_h264_keyframes"]
        if n == self._key_requests:
            return False
        self._key_requests = n
        return True

    def _prepare(self) -> None:
        """Open the encoder for the newest frame's size while idle: the first viewer waits
        for nothing but the next frame."""
        counter, slot = self.raw.latest()
        if counter == 0:
            return
        try:
            _, meta = self.raw.read_meta(slot, counter)
        except TornRead:
            return
        w, h = meta.width & ~1, meta.height & ~1
        if self.enc is None or (self.enc.width, self.enc.height) != (w, h):
            self._open(w, h)
        self.enc.force_keyframe()

    def step(self) -> None:
        """One wake-up: feedback, consumers, then the newest frame if there is one."""
        if self.rtp is not None and self.rtp.keyframe_requested():
            self._force("requested over RTCP")
        if self._keyframe_requested() and self.enc is not None:
            self.enc.force_keyframe()  # a receiver that just connected: not rate-limited
            log.debug("keyframe: requested by the push")
        consumers = self.consumers_now()
        if consumers > self.consumers:
            self._force(f"{consumers} consumer(s), was {self.consumers}")
        self.consumers = consumers
        if consumers <= 0:
            self._prepare()
            self.stats.tick()
            if self.control["h264_fps"]:
                self.control["h264_fps"] = self.control["h264_bps"] = 0.0
            self.last = self.raw.counter()
            if self.rtp is not None:
                self.rtp.sender_report()
            return
        counter, slot = self.raw.latest()
        if counter == self.last:
            return
        try:
            seq, meta = self.raw.read_meta(slot, counter)
        except TornRead:
            return
        w, h = meta.width & ~1, meta.height & ~1
        color = np.ndarray((meta.height, meta.width, 3), np.uint8, buffer=self.raw.payload(slot))
        t0 = time.time()
        i420 = H264Encoder.to_i420(color[:h, :w])
        if not self.raw.still_valid(slot, seq):
            return  # lapped by capture while copying: take the next newest
        self.last = counter
        if self.enc is None or (self.enc.width, self.enc.height) != (w, h):
            self._open(w, h)
            assert self.enc is not None
        self._apply_bitrate()
        for au in self.enc.encode_i420(i420):
            t1 = time.time()
            if len(au.data) > self.out.capacity:
                log.warning("access unit of %d bytes exceeds the slot (%d); dropped",
                            len(au.data), self.out.capacity)
                self.enc.force_keyframe()
                continue
            self.out.publish(au.data, frame_no=meta.frame_no, ts_capture=meta.ts_capture,
                             ts_aux1=t0, ts_aux2=t1, width=w, height=h,
                             flags=FLAG_KEYFRAME if au.keyframe else 0)
            if self.notify is not None:
                wake(self.notify)
            if self.rtp is not None:
                self.rtp.send(au.data, meta.ts_capture)
            self.stats.record(len(au.data), au.keyframe, t1 - t0)


def h264_main(child: Child, opts: H264Options, target: RtpTarget | None = None) -> None:
    """The H.264 child: one access unit per new frame while consumed, RTP to `target`."""
    handles, control = child.handles, child.control
    raw = FrameRing.attach(handles.raw)
    out = FrameRing.attach(handles.h264)
    rtp = (RtpSender(target.host, target.video_port, target.rtcp_port)
           if target is not None else None)
    if handles.h264_wake_w is not None:
        set_nonblocking_writer(handles.h264_wake_w)
    stage = H264Stage(child.cfg, opts, raw, out, control, rtp=rtp, notify=handles.h264_wake_w)
    wake_r = handles.sink_wakes["h264"][0]
    fds = [wake_r.fileno(), *([rtp.fileno()] if rtp else [])]
    # The robotics sinks read the H.264 ring: wake them as each access unit lands.
    readers = [w for name, (_, w) in handles.sink_wakes.items()
               if name not in ("h264", "depthvideo")]
    for w in readers:
        set_nonblocking_writer(w)
    try:
        while not child.stop.is_set():
            child.beat()
            try:
                ready, _, _ = select.select(fds, [], [], 0.5)
            except InterruptedError:
                continue
            if wake_r.fileno() in ready:
                drain(wake_r)
            published = out.counter()
            stage.step()
            if readers and out.counter() != published:
                for w in readers:
                    wake(w)
    finally:
        if rtp is not None:
            rtp.close()
        control["h264_fps"] = control["h264_bps"] = 0.0
