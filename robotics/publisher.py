"""The publisher both robotics children run: read the rings, log standard messages.

Each child (`robotics/live.py`, `robotics/record.py`) owns one foxglove-sdk `Context`
with one sink in it and runs a `Publisher` on it, woken by its own pipe (capture writes a
byte per raw frame, the encoder per JPEG):

- `/camera/color`: the encoder's JPEG, as it is (foxglove.CompressedImage, jpeg);
- `/camera/depth`: 16-bit depth in device units straight from the raw ring (RawImage 16UC1),
  or the same as a lossless 16-bit PNG (CompressedImage png, encoded by `robotics/depth.py`
  on worker threads; in the ros2 flavour compressed_depth_image_transport's format);
- `/camera/h264`: every access unit of the H.264 stage's ring, in order, from a keyframe
  on (CompressedVideo, h264); the stage also wakes the pipe as each one lands;
- `/camera/calibration`: CameraCalibration from `camera_model`, once a second;
- `/tf`: camera_link -> the optical frame, once a second, so a 3D view stands upright;
- `/gps`: LocationFix from the `push/gps/` readers.

A channel is read only while it has a sink (a subscribed client, or the MCAP file), and
the color stream counts as wanted (`sink_color_<child>`) only then, so nothing is encoded
for nobody; `sink_h264_<child>` holds the number of /camera/h264 subscribers (1 for the
file), so the stage encodes only for someone and forces a keyframe when one joins.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from typing import Any

from media.geometry import FRAME_ID, camera_model
from pipeline.child import Child, Handles, drain
from pipeline.control import Control, claimed
from pipeline.shm import (
    FLAG_HAS_DEPTH,
    FLAG_KEEPALIVE,
    FLAG_KEYFRAME,
    FLAG_NO_SIGNAL,
    FrameRing,
    TornRead,
)
from robotics import messages as m
from robotics.depth import FrameSpan, PngEncoder
from robotics.flavours import FLAVOURS
from robotics.imu import TOPIC_IMU, ImuTopic

log = logging.getLogger("robotics")

CALIBRATION_PERIOD_S = 1.0
ADOPT_EVERY_S = 0.5
"""How often the spare slots are looked at for a camera plugged in."""


class Publisher:
    """Reads the newest frames from the rings and logs them on the channels that have sinks."""

    def __init__(self, role: str, ctx: Any, control: Control, raw: FrameRing,
                 color: FrameRing, *, depth: str, gps: Any = None,
                 live: bool = False, flavour: str = "foxglove", camera: str = "",
                 tf: Any = None) -> None:
        """`camera`: one camera of several, whose topics are /NAME/color ... and frames
        NAME_link, NAME_color_optical_frame (""): the only one, on /camera/...); `tf`: the
        /tf channel the cameras share, None to make one."""
        self.role, self.control, self.raw, self.color_ring = role, control, raw, color
        self.live = live
        self.camera = camera
        self.frame_id = f"{camera}_color_optical_frame" if camera else FRAME_ID
        self.body_id = f"{camera}_link" if camera else m.BODY_FRAME_ID
        self.sink_field = f"sink_color_{role}"
        control[self.sink_field] = 0.0  # a crashed predecessor may have left it set
        self.make = FLAVOURS[flavour]()
        self.color = self.make.channel("color", self.topic(m.TOPIC_COLOR), ctx)
        self.ctx, self.want_depth = ctx, depth != "off"
        self.png = PngEncoder() if depth == "png" else None
        self.span = FrameSpan()
        self.depth: Any = None
        self.calibration = self.make.channel("calibration", self.topic(m.TOPIC_CALIBRATION),
                                             ctx)
        self.tf = tf if tf is not None else self.make.channel("tf", m.TOPIC_TF, ctx)
        self.gps = gps
        self.location = self.make.channel("gps", m.TOPIC_GPS, ctx) if gps else None
        self.last_color = color.counter()
        self.last_raw = 0
        self.last_ts: dict[str, float] = {}
        self.newest_ts = 0.0
        self.info_version = -1.0
        self.model: dict[str, Any] | None = None
        self.calibration_due = 0.0
        self.counts = {"color": 0, "depth": 0, "h264": 0, "calibration": 0, "tf": 0, "gps": 0}
        self.wanting = False
        self.live_signal = False
        self.on_signal_lost: Any = None
        self.video: Video | None = None
        self.imu: ImuTopic | None = None
        self.closed = False

    def topic(self, base: str) -> str:
        """A camera topic (/camera/color) as this camera publishes it (/NAME/color)."""
        return base.replace("/camera/", f"/{self.camera}/", 1) if self.camera else base

    def add_video(self, ring: FrameRing, consumers: Callable[[], int] | None = None) -> None:
        """Publish /camera/h264 from the H.264 ring; `consumers` counts its subscribers
        (default: 1 while the channel has a sink, as the MCAP file always does)."""
        channel = self.make.channel("video", self.topic(m.TOPIC_H264), self.ctx)
        self.video = Video(ring, self.control, f"sink_h264_{self.role}", channel,
                           consumers or (lambda: int(channel.has_sinks())))

    def add_imu(self, ring: FrameRing) -> None:
        """Publish /imu (/NAME/imu) from the IMU ring (once the source has written samples
        to it)."""
        self.imu = ImuTopic(ring, self.make, self.ctx,
                            f"/{self.camera}/imu" if self.camera else TOPIC_IMU)

    def calibrate_now(self) -> None:
        """Send the calibration with the next frame (a client just subscribed)."""
        self.calibration_due = 0.0

    def _fresh(self, topic: str, ts: float) -> bool:
        """Log times only move forward per channel (a repeat or a clock step back is skipped)."""
        if ts <= self.last_ts.get(topic, 0.0):
            return False
        self.last_ts[topic] = ts
        return True

    def step(self) -> None:
        """Publish whatever is new and wanted; called at every wake-up."""
        want_color = self.color.has_sinks()
        if want_color != self.wanting:
            self.control[self.sink_field] = 1.0 if want_color else 0.0
            self.wanting = want_color
            if want_color:
                self.last_color = self.color_ring.counter()
        if want_color:
            self._color()
        if self.video is not None:
            self._video(self.video)
        self._raw()
        if self.imu is not None:
            self.imu.step(self.frame_id)
        if self.png is not None:
            self._png_done(wait=False)
        self._calibration()
        self._gps()

    def _color(self) -> None:
        if self.color_ring.counter() == self.last_color:
            return
        got = self.color_ring.read_latest()
        if got is None:
            return
        meta, jpeg = got
        self.last_color = meta.counter
        if meta.flags & FLAG_KEEPALIVE or (meta.flags & FLAG_NO_SIGNAL and not self.live):
            return
        if self._fresh("color", meta.ts_capture):
            self.color.log(self.make.color(jpeg, meta.ts_capture, self.frame_id),
                           log_time=_ns(meta.ts_capture))
            self.counts["color"] += 1

    def _video(self, video: Video) -> None:
        for meta, au in video.new_access_units():
            if self._fresh("h264", meta.ts_capture):
                video.channel.log(self.make.video(au, meta.ts_capture, self.frame_id),
                                  log_time=_ns(meta.ts_capture))
                self.counts["h264"] += 1

    def _raw(self) -> None:
        counter, slot = self.raw.latest()
        if counter in (self.last_raw, 0):
            return
        try:
            seq, meta = self.raw.read_meta(slot, counter)
        except TornRead:
            return
        self.last_raw = counter
        if meta.flags & FLAG_NO_SIGNAL:
            if self.live_signal and self.on_signal_lost is not None:
                self.on_signal_lost()
            self.live_signal = False
            return
        self.live_signal = True
        self.newest_ts = max(self.newest_ts, meta.ts_capture)
        if not self.want_depth or not meta.flags & FLAG_HAS_DEPTH or not meta.len1:
            return
        if self.depth is None:
            # Created with the first depth frame, whose slot carries the depth scale.
            self.depth = self.make.channel(
                "depth" if self.png is None else "depth_png", self.topic(m.TOPIC_DEPTH),
                self.ctx,
                metadata={"depth_scale": f"{meta.depth_scale or 0.001:g}",
                          "depth_units": "metres per count"})
        if not self.depth.has_sinks():
            return
        view = self.raw.payload(slot)
        try:
            data = bytes(view[meta.len0 : meta.len0 + meta.len1])
        finally:
            view.release()
        if not self.raw.still_valid(slot, seq):
            return
        if not self._fresh("depth", meta.ts_capture):
            return
        if self.png is not None:
            self.png.submit(data, meta.width, meta.height, (meta.ts_capture, meta.frame_no))
            return
        self.depth.log(self.make.depth(data, meta.width, meta.height, meta.ts_capture,
                                       self.frame_id), log_time=_ns(meta.ts_capture))
        self._depth_sent(meta.frame_no)

    def _png_done(self, wait: bool) -> None:
        """Log the depth PNGs encoded so far, in capture order (`wait`: every pending one)."""
        assert self.png is not None
        for png, (ts, frame_no) in self.png.finished(wait):
            self.depth.log(self.make.depth_png(png, ts, self.frame_id), log_time=_ns(ts))
            self._depth_sent(frame_no)

    def _depth_sent(self, frame_no: int) -> None:
        self.counts["depth"] += 1
        self.span.add(frame_no)

    def settle(self) -> None:
        """Log every depth frame still being encoded (before a file is closed)."""
        if self.png is not None:
            self._png_done(wait=True)

    def next_file(self) -> None:
        """A new file began: start its frame account and put the calibration and /tf in it
        at once, so the file stands on its own."""
        self.span = FrameSpan(self.span.last)
        self.last_ts.pop("calibration", None)
        self.calibration_due = 0.0
        self._calibration()

    def _calibration(self) -> None:
        version = self.control["info_version"]
        if version != self.info_version:
            self.info_version = version
            self.model = camera_model(self.control.info())
            if self.model is not None:
                self.model["frame_id"] = self.frame_id
            self.calibration_due = 0.0
        if not self.newest_ts or not (self.calibration.has_sinks() or self.tf.has_sinks()):
            return
        now = time.monotonic()
        if now < self.calibration_due:
            return
        self.calibration_due = now + CALIBRATION_PERIOD_S
        ts = self.newest_ts
        if not self._fresh("calibration", ts):
            return
        if self.tf.has_sinks():
            self.tf.log(self.make.transform(ts, self.frame_id, self.body_id), log_time=_ns(ts))
            self.counts["tf"] += 1
        if self.model is not None and self.calibration.has_sinks():
            self.calibration.log(self.make.calibration(self.model, ts), log_time=_ns(ts))
            self.counts["calibration"] += 1

    def _gps(self) -> None:
        if self.gps is None or self.location is None:
            return
        while True:
            fix = self.gps.get(timeout=0)
            if fix is None:
                return
            now = time.time()
            ts = m.fix_time(fix.time, now)
            if self._fresh("gps", now) and self.location.has_sinks():
                self.location.log(self.make.gps(fix.lat, fix.lon, fix.alt, ts),
                                  log_time=_ns(now))
                self.counts["gps"] += 1

    def summary(self) -> str:
        """What was sent so far, per topic ("color 12, depth 12"), or "nothing"."""
        counts = {**self.counts, "imu": self.imu.sent if self.imu else 0,
                  "depth dropped": self.png.dropped if self.png else 0}
        return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing"

    def close(self) -> None:
        """Log what is still being encoded, stop wanting color and H.264, and let go of
        every ring read (once; a second call does nothing). The channels go with their
        context."""
        if self.closed:
            return
        self.closed = True
        self.settle()
        if self.png is not None:
            self.png.close()
        self.control[self.sink_field] = 0.0
        rings = [self.raw, self.color_ring]
        if self.video is not None:
            self.video.close()
            rings.append(self.video.ring)
        if self.imu is not None:
            rings.append(self.imu.follower.ring)
        for ring in rings:
            ring.close()


class Video:
    """The H.264 ring read in order for one child: every access unit, from a keyframe on.

    A decoder needs every access unit since the last keyframe, so unlike the JPEG rings
    this is not a newest-frame read: the child walks the counters it has not seen. The
    first subscribers (or a child that fell more than a ring behind) wait for a keyframe,
    which the stage forces as soon as it sees the subscriber count in `field` grow. A
    client joining others gets that forced keyframe a frame or two later: the SDK sends to
    every subscriber alike, and holding the others back would freeze their view.
    """

    def __init__(self, ring: FrameRing, control: Control, field: str, channel: Any,
                 consumers: Callable[[], int]) -> None:
        self.ring, self.control, self.field = ring, control, field
        self.channel, self.consumers = channel, consumers
        self.n = 0
        self.synced = False
        self.last = ring.counter()
        control[field] = 0.0  # a crashed predecessor may have left it set

    def new_access_units(self) -> list[tuple[Any, bytes]]:
        """(meta, Annex B bytes) of each access unit to publish now, oldest first."""
        n = self.consumers()
        if n != self.n:
            if self.n == 0:
                self.last, self.synced = self.ring.counter(), False
            self.control[self.field] = float(n)
            self.n = n
        if n <= 0:
            return []
        top = self.ring.counter()
        if top - self.last > self.ring.nslots:
            log.warning("%d H.264 access units overwritten before they were read; "
                        "waiting for a keyframe", top - self.last - self.ring.nslots)
            self.last, self.synced = top - self.ring.nslots, False
        out = []
        while self.last < top:
            self.last += 1
            got = self._read(self.last)
            if got is None:
                self.synced = False
                continue
            meta, au = got
            if meta.flags & FLAG_KEYFRAME:
                self.synced = True
            if self.synced:
                out.append(got)
        return out

    def _read(self, counter: int) -> tuple[Any, bytes] | None:
        """Copy out access unit `counter`, or None when it was overwritten meanwhile."""
        slot = (counter - 1) % self.ring.nslots  # the ring fills slots 0, 1, ... in turn
        try:
            seq, meta = self.ring.read_meta(slot, counter)
        except TornRead:
            return None
        if meta.len0 > self.ring.capacity:
            return None
        view = self.ring.payload(slot)
        try:
            data = bytes(view[: meta.len0])
        finally:
            view.release()
        if not self.ring.still_valid(slot, seq) or self.ring.counter() - counter >= \
                self.ring.nslots:
            return None
        return meta, data

    def close(self) -> None:
        """No longer a consumer: the stage stops encoding if nobody else is."""
        self.control[self.field] = 0.0


def _ns(ts: float) -> int:
    return int(round(ts * 1e9))


def gps_reader(spec: str | None) -> Any:
    """A started `push.gps` reader for `--gps SPEC`, or None without one."""
    if not spec:
        return None
    from push.gps.spec import parse_gps_spec  # noqa: PLC0415

    reader = parse_gps_spec(spec)
    if reader is not None:
        reader.start()
        log.info("GPS from %s on %s", reader.describe(), m.TOPIC_GPS)
    return reader


def attach_rings(child: Child) -> tuple[FrameRing, FrameRing]:
    """The raw ring and the color JPEG ring, which every robotics child reads."""
    return FrameRing.attach(child.handles.raw), FrameRing.attach(child.handles.jpeg["color"])


def attach_imu(pub: Publisher, child: Child) -> None:
    """Publish /imu from the IMU ring, where the run has one."""
    if child.handles.imu:
        pub.add_imu(FrameRing.attach(child.handles.imu))


Camera = tuple[str, Any, Handles]
"""A further camera as a robotics child receives it: name, pipeline settings, handles."""


class Publishers:
    """Every camera's Publisher on one context (one server, one file): stepped, settled
    and closed together; the file's camera model and frame account are the first's."""

    def __init__(self, pubs: list[Publisher], wakes: list[Any], *,
                 spares: tuple[Handles, ...] = (),
                 adopt: Callable[[str, Handles], Publisher] | None = None) -> None:
        """`spares`: the slots of cameras that may be plugged in later; `adopt(name, h)`
        makes the Publisher of one once its control block names it."""
        self.pubs, self.wakes = pubs, wakes
        self.first = pubs[0]
        self.pending = [(Control.attach(h.control), h) for h in spares]
        self.adopt = adopt
        self.adopt_at = 0.0

    def _adopt(self) -> None:
        """Publish the cameras plugged in since the last look (twice a second at most)."""
        now = time.monotonic()
        if now < self.adopt_at or self.adopt is None:
            return
        self.adopt_at = now + ADOPT_EVERY_S
        for name, h in claimed(self.pending):
            pub = self.adopt(name, h)
            self.pubs.append(pub)
            self.wakes.append(h.sink_wakes[pub.role][0])
            log.info("camera %s plugged in: publishing it on /%s/...", name, name)

    @property
    def model(self) -> dict[str, Any] | None:
        return self.first.model

    @property
    def span(self) -> FrameSpan:
        return self.first.span

    @property
    def png(self) -> PngEncoder | None:
        return self.first.png

    def set_on_signal_lost(self, fn: Callable[[], None]) -> None:
        for pub in self.pubs:
            pub.on_signal_lost = fn

    def step(self) -> None:
        if self.pending:
            self._adopt()
        for pub in self.pubs:
            pub.step()

    def settle(self) -> None:
        for pub in self.pubs:
            pub.settle()

    def next_file(self) -> None:
        for pub in self.pubs:
            pub.next_file()

    def calibrate_now(self) -> None:
        for pub in self.pubs:
            pub.calibrate_now()

    def summary(self) -> str:
        if len(self.pubs) == 1:
            return self.first.summary()
        return "; ".join(f"{pub.camera}: {pub.summary()}" for pub in self.pubs)

    def close(self) -> None:
        for pub in self.pubs:
            pub.close()
        for control, _ in self.pending:
            control.close()
        self.pending = []


def publishers(child: Child, ctx: Any, first: str, more: tuple[Camera, ...], *, depth: str,
               gps: Any = None, live: bool = False, flavour: str = "foxglove",
               spares: tuple[Handles, ...] = ()) -> Publishers:
    """A Publisher per camera of the run on `ctx`: the first camera's (this child's own
    handles, the GPS) and one per further camera on its own rings and control block.
    With several cameras every topic carries its camera's name (`first` for the first);
    a camera plugged in later into one of the `spares` slots is published under its own."""
    role = child.name
    raw, color = attach_rings(child)
    named = first if more else ""
    head = Publisher(role, ctx, child.control, raw, color, depth=depth, gps=gps, live=live,
                     flavour=flavour, camera=named)
    attach_imu(head, child)
    pubs, wakes = [head], [child.handles.sink_wakes[role][0]]

    def one(name: str, h: Handles) -> Publisher:
        pub = Publisher(role, ctx, Control.attach(h.control), FrameRing.attach(h.raw),
                        FrameRing.attach(h.jpeg["color"]), depth=depth, live=live,
                        flavour=flavour, camera=name, tf=head.tf)
        if h.imu:
            pub.add_imu(FrameRing.attach(h.imu))
        return pub

    for name, _cfg, h in more:
        pubs.append(one(name, h))
        wakes.append(h.sink_wakes[role][0])
    return Publishers(pubs, wakes, spares=spares, adopt=one)


def serve(pub: Publishers, child: Child, tick: Callable[[], bool] | None = None) -> bool:
    """Publish at every wake-up of any camera's pipe (at least twice a second) until
    stopped.

    `tick` runs after each step; when it returns False serving ends early (False returned).
    """
    while not child.stop.is_set():
        child.beat()
        fds = {w.fileno(): w for w in pub.wakes}  # a camera plugged in adds its pipe
        readable, _, _ = select.select(list(fds), [], [], 0.5)
        for fd in readable:
            drain(fds[fd])
        pub.step()
        if tick is not None and not tick():
            return False
    return True


def reason(exc: BaseException) -> str:
    """The text of a foxglove-sdk error without its type prefix."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("FoxgloveError: ") else text
