"""Intel RealSense sources: a live D455 (color + z16 depth) and .bag/.db3 recordings.

Both share one frame-processing path (`_process`): optional librealsense post-processing
filters on depth, depth aligned to color, color converted to BGR, depth copied as uint16.
pyrealsense2 is optional: without it this module still imports, `realsense_devices()`
returns [] (so `--source auto` falls back) and opening a source is a configuration error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from camera.base import Frame, FrameSource, SourceConfigError, SourceEnded, SourceError

try:
    import pyrealsense2 as rs
except ImportError:  # e.g. ARM installs without the wheel
    rs = None

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Color + depth modes the D455 offers for both streams: (width, height, fps).
D455_MODES: tuple[tuple[int, int, int], ...] = tuple(
    (w, h, fps) for (w, h) in ((1280, 720), (848, 480), (640, 480)) for fps in (5, 15, 30)
)

#: Post-processing filters by name, in the order librealsense recommends applying them.
FILTER_ORDER: tuple[str, ...] = ("decimation", "threshold", "spatial", "temporal",
                                 "hole_filling")

START_TIMEOUT = 6.0    # s; the supervisor kills a capture process silent for 10 s
STOP_TIMEOUT = 3.0     # s
DEVICE_WAIT = 3.0      # s a first open() waits for a camera still enumerating
RESET_INTERVAL = 30.0  # s between two hardware resets of the same camera
RESET_SETTLE = 3.0     # s after a reset before the camera is used again
CLOCK_TOLERANCE = 5.0  # s a device timestamp may differ from time.time() to be trusted
SYNC_QUEUE = 2         # framesets buffered by the syncer of the device= path


def _modes_text() -> str:
    sizes = dict.fromkeys(f"{w}x{h}" for w, h, _ in D455_MODES)
    rates = sorted({fps for _, _, fps in D455_MODES})
    return f"{', '.join(sizes)} at {'/'.join(map(str, rates))} fps"


def validate_mode(width: int, height: int, fps: float) -> None:
    """Raise SourceConfigError unless (width, height, fps) is a D455 color+depth mode."""
    if (width, height, fps) not in D455_MODES:
        raise SourceConfigError(
            f"RealSense D455 cannot stream color+depth at {width}x{height}@{fps:g}; "
            f"valid modes: {_modes_text()}")


def normalize_filters(names: Iterable[str]) -> tuple[str, ...]:
    """Check filter names ('-' or '_') and return them in librealsense's recommended order."""
    wanted = set()
    for name in names:
        key = name.strip().lower().replace("-", "_")
        if key not in FILTER_ORDER:
            raise SourceConfigError(
                f"unknown RealSense filter {name!r}; known: {', '.join(FILTER_ORDER)}")
        wanted.add(key)
    return tuple(n for n in FILTER_ORDER if n in wanted)


def _require_rs() -> None:
    if rs is None:
        raise SourceConfigError("pyrealsense2 is not installed (pip install pyrealsense2 on "
                                "x86_64; build librealsense with Python bindings elsewhere)")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _bounded(fn: Callable[[], T], timeout: float, what: str,
             on_late: Callable[[T], None] | None = None) -> T:
    """Run a librealsense call that may block, giving up after `timeout` seconds.

    A call that finishes after we gave up has its result handed to `on_late` (to stop a
    pipeline nobody will use). Exceptions from `fn` propagate; a timeout is a SourceError.
    """
    box: dict[str, Any] = {}
    abandoned = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
            return
        if abandoned.is_set() and on_late is not None:
            try:
                on_late(box["value"])
            except Exception as exc:
                log.debug("cleaning up after a late %s: %s", what, exc)

    worker = threading.Thread(target=run, name=f"rs-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        abandoned.set()
        raise SourceError(f"{what} did not finish within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _device_info(dev: Any) -> dict[str, str]:
    """serial, name, firmware, usb_type, product_line of a device, where it reports them."""
    keys = {
        "serial": "serial_number", "name": "name", "firmware": "firmware_version",
        "usb_type": "usb_type_descriptor", "product_line": "product_line",
    }
    out: dict[str, str] = {}
    for key, attr in keys.items():
        info = getattr(rs.camera_info, attr)
        try:
            if dev.supports(info):
                out[key] = dev.get_info(info)
        except RuntimeError:
            continue
    return out


def realsense_devices() -> list[dict[str, str]]:
    """Attached RealSense devices (serial, name, firmware, usb_type); [] if none or no library."""
    if rs is None:
        return []
    try:
        return [_device_info(d) for d in rs.context().query_devices()]
    except RuntimeError as exc:
        log.debug("querying RealSense devices: %s", exc)
        return []


def _intrinsics(profile: Any) -> dict[str, Any]:
    """A video stream profile's intrinsics as plain data for /status."""
    i = profile.as_video_stream_profile().get_intrinsics()
    return {"width": i.width, "height": i.height, "fx": i.fx, "fy": i.fy, "ppx": i.ppx,
            "ppy": i.ppy, "model": str(i.model).rsplit(".", 1)[-1],
            "coeffs": [float(c) for c in i.coeffs]}


def _color_converters() -> dict[Any, Callable[[np.ndarray], np.ndarray]]:
    if rs is None:
        return {}
    return {
        rs.format.bgr8: lambda a: a.copy(),
        rs.format.rgb8: lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGR),
        rs.format.bgra8: lambda a: cv2.cvtColor(a, cv2.COLOR_BGRA2BGR),
        rs.format.rgba8: lambda a: cv2.cvtColor(a, cv2.COLOR_RGBA2BGR),
        rs.format.yuyv: lambda a: cv2.cvtColor(a, cv2.COLOR_YUV2BGR_YUYV),
        rs.format.uyvy: lambda a: cv2.cvtColor(a, cv2.COLOR_YUV2BGR_UYVY),
    }


_TO_BGR = _color_converters()


class _RealSenseBase(FrameSource):
    """Frame processing shared by the live camera, the software-device path and recordings."""

    self_paced = True

    def __init__(self, *, align: bool, filters: Sequence[str]) -> None:
        self.align = align
        self.filters = normalize_filters(filters)
        self.depth_scale = 0.001
        self.frames_read = 0
        self._blocks: list[Any] = []
        self._aligner: Any = None
        self._color_profile: Any = None
        self._depth_profile: Any = None
        self._device_clock = False
        self._streams: dict[str, Any] = {}

    def _setup_processing(self, color_profile: Any, depth_profile: Any | None) -> None:
        """Fresh filter/align blocks (temporal state does not outlive a session)."""
        fmt = color_profile.format()
        if fmt not in _TO_BGR:
            raise SourceConfigError(f"RealSense color format {fmt} is not supported")
        self._color_profile, self._depth_profile = color_profile, depth_profile
        self._blocks = []
        if depth_profile is not None:
            # spatial and temporal work best on disparity: convert around them
            disp = [n for n in self.filters if n in ("spatial", "temporal")]
            for name in self.filters:
                if disp and name == disp[0]:
                    self._blocks.append(rs.disparity_transform(True))
                self._blocks.append(self._make_filter(name))
                if disp and name == disp[-1]:
                    self._blocks.append(rs.disparity_transform(False))
        use_align = self.align and depth_profile is not None
        self._aligner = rs.align(rs.stream.color) if use_align else None
        self._streams = self._describe_streams()

    @staticmethod
    def _make_filter(name: str) -> Any:
        return {
            "decimation": rs.decimation_filter, "threshold": rs.threshold_filter,
            "spatial": rs.spatial_filter, "temporal": rs.temporal_filter,
            "hole_filling": rs.hole_filling_filter,
        }[name]()

    def _timestamp(self, frame: Any) -> float:
        """Seconds since the epoch: the device's own clock when it is host time, else now."""
        now = time.time()
        if not self._device_clock:
            return now
        domain = frame.get_frame_timestamp_domain()
        if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
            ts = frame.get_timestamp() / 1000.0
            if abs(ts - now) < CLOCK_TOLERANCE:
                return ts
        return now

    def _process(self, frames: Any) -> Frame | None:
        """Filters, alignment and conversion of one frameset; None if it lacks a stream."""
        for block in self._blocks:
            frames = block.process(frames).as_frameset()
        if self._aligner is not None:
            frames = self._aligner.process(frames)
        color_frame = frames.get_color_frame()
        if not color_frame:
            return None
        depth = None
        if self._depth_profile is not None:
            depth_frame = frames.get_depth_frame()
            if not depth_frame:
                return None
            depth = np.array(np.asanyarray(depth_frame.get_data()), dtype=np.uint16, copy=True)
        color = _TO_BGR[color_frame.get_profile().format()](
            np.asanyarray(color_frame.get_data()))
        if depth is not None and depth.shape != color.shape[:2]:
            depth = cv2.resize(depth, (color.shape[1], color.shape[0]),
                               interpolation=cv2.INTER_NEAREST)
        self.frames_read += 1
        return Frame(color=color, depth=depth, timestamp=self._timestamp(color_frame),
                     frame_number=int(color_frame.get_frame_number()),
                     depth_scale=self.depth_scale)

    def _wait(self, waiter: Any, timeout: float) -> Frame | None:
        """Next complete frame from a pipeline or syncer within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return None
            try:
                ok, frames = waiter.try_wait_for_frames(left_ms)
                if not ok:
                    return None
                frame = self._process(frames)
            except RuntimeError as exc:
                raise SourceError(f"RealSense: {_one_line(exc)}") from None
            if frame is not None:
                return frame

    def _describe_streams(self) -> dict[str, Any]:
        """Mode and intrinsics of the open streams, kept for info() (cheap, survives close)."""
        info: dict[str, Any] = {}
        cp = self._color_profile.as_video_stream_profile()
        info.update(width=cp.width(), height=cp.height(), fps=cp.fps(),
                    color_format=str(cp.format()).rsplit(".", 1)[-1],
                    color_intrinsics=_intrinsics(cp))
        if self._depth_profile is not None:
            info["depth_intrinsics"] = _intrinsics(self._depth_profile)
            info["depth_aligned_to_color"] = self._aligner is not None
        return info

    def _stream_info(self) -> dict[str, Any]:
        return {"align": self.align, "filters": list(self.filters),
                "depth_scale": self.depth_scale, **self._streams}


class RealSenseSource(_RealSenseBase):
    """A live RealSense (D455) camera through rs.pipeline, or a given rs.device via a syncer.

    Recovery happens inside open(), which the capture loop calls after close(): it
    re-queries the devices each time; when the camera is still enumerated but stopped
    delivering (or refused to start), open() sends it a hardware_reset() (at most once per
    RESET_INTERVAL) and raises SourceError so the loop backs off while it re-enumerates.
    No device at the first open() is fatal (SourceConfigError); after a successful session
    a missing device is a SourceError (unplugged: keep retrying). Every blocking
    librealsense call is bounded (START_TIMEOUT, STOP_TIMEOUT, the read timeout).

    Frame.timestamp is the device timestamp when its domain is host time (global_time or
    system_time, within CLOCK_TOLERANCE of time.time()), else time.time() at arrival.
    With decimation and align=False the smaller depth image is resized (nearest) to the
    color size; without align depth and color pixels do not correspond.
    """

    kind = "realsense"

    def __init__(self, width: int, height: int, fps: int, *, serial: str | None = None,
                 align: bool = True, filters: Sequence[str] = (),
                 record_raw: str | None = None, device: Any = None,
                 device_wait: float = DEVICE_WAIT) -> None:
        super().__init__(align=align, filters=filters)
        validate_mode(width, height, fps)
        if record_raw is not None and not str(record_raw).endswith(".db3"):
            raise SourceConfigError(f"--record-raw {record_raw}: librealsense writes .db3 "
                                    "files only; use a name ending in .db3")
        self.width, self.height, self.fps = width, height, int(fps)
        self.serial = serial
        self.record_raw = record_raw
        self.device_wait = device_wait
        self._device = device
        self._pipe: Any = None
        self._syncer: Any = None
        self._sensors: list[Any] = []
        self._recorder: Any = None
        self._dev_info: dict[str, str] = {}
        self._record_path: str | None = None
        self._recordings = 0
        self._ever_opened = False
        self._stalled = False
        self._needs_reset = False
        self._last_reset = -RESET_INTERVAL

    def _next_record_path(self) -> str:
        """The first session records to record_raw; later ones to NAME-2.db3, NAME-3.db3..."""
        assert self.record_raw is not None
        if self._recordings == 0:
            return self.record_raw
        p = Path(self.record_raw)
        return str(p.with_name(f"{p.stem}-{self._recordings + 1}{p.suffix}"))

    def open(self) -> None:
        """Start streaming (pipeline, or the given device's sensors into a syncer)."""
        _require_rs()
        self.close()
        self._stalled = False
        if self._device is not None:
            self._open_device(self._device)
        else:
            self._open_pipeline()
        self._ever_opened = True
        if self._record_path:
            self._recordings += 1
        log.info("RealSense %s %s streaming %dx%d@%d align=%s filters=%s",
                 self._dev_info.get("name", "?"), self._dev_info.get("serial", "?"),
                 self.width, self.height, self.fps, self.align, ",".join(self.filters))

    def _find_device(self) -> Any:
        """The device to use (by serial or the first), waiting briefly on the first open."""
        deadline = time.monotonic() + (0.0 if self._ever_opened else self.device_wait)
        while True:
            try:
                found = list(rs.context().query_devices())
            except RuntimeError as exc:
                log.debug("querying RealSense devices: %s", exc)
                found = []
            for dev in found:
                if self.serial is None or _device_info(dev).get("serial") == self.serial:
                    return dev
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        serials = [_device_info(d).get("serial", "?") for d in found]
        wanted = f" with serial {self.serial}" if self.serial else ""
        if self._ever_opened:
            self._needs_reset = False  # it left the bus: it will re-enumerate fresh
            raise SourceError(f"RealSense{wanted} not connected")
        if not serials:
            raise SourceConfigError(f"no RealSense device found{wanted}")
        raise SourceConfigError(f"no RealSense device{wanted}; found: {', '.join(serials)}")

    def _maybe_reset(self, dev: Any) -> None:
        """Hardware-reset a camera that stalled while staying enumerated; SourceError if so."""
        since = time.monotonic() - self._last_reset
        if since < RESET_SETTLE:
            raise SourceError("RealSense is re-enumerating after a hardware reset")
        if not self._needs_reset or since < RESET_INTERVAL:
            return
        self._needs_reset = False
        self._last_reset = time.monotonic()
        log.warning("RealSense %s stalled: sending a hardware reset",
                    _device_info(dev).get("serial", "?"))
        try:
            dev.hardware_reset()
        except RuntimeError as exc:
            log.warning("hardware reset failed: %s", _one_line(exc))
        raise SourceError("RealSense stalled; hardware reset sent, waiting for it to return")

    def _open_pipeline(self) -> None:
        dev = self._find_device()
        self._maybe_reset(dev)
        self._dev_info = _device_info(dev)
        serial = self._dev_info.get("serial")
        cfg = rs.config()
        if serial:
            cfg.enable_device(serial)
        cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.bgr8, self.fps)
        cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        pipe = rs.pipeline()
        if not cfg.can_resolve(rs.pipeline_wrapper(pipe)):
            msg = (f"RealSense {self._dev_info.get('name', '?')} {serial} does not offer "
                   f"color bgr8 + depth z16 at {self.width}x{self.height}@{self.fps}")
            if self._ever_opened:
                raise SourceError(msg)
            raise SourceConfigError(msg)
        self._record_path = None
        if self.record_raw:
            self._record_path = self._next_record_path()
            cfg.enable_record_to_file(self._record_path)
        try:
            profile = _bounded(lambda: pipe.start(cfg), START_TIMEOUT, "pipeline start",
                               on_late=lambda _p: pipe.stop())
        except RuntimeError as exc:
            self._needs_reset = True
            raise SourceError(f"cannot start RealSense {serial}: {_one_line(exc)}") from None
        except SourceError:
            self._needs_reset = True
            raise
        self._pipe = pipe
        try:
            self.depth_scale = profile.get_device().first_depth_sensor().get_depth_scale()
            self._device_clock = True
            self._setup_processing(profile.get_stream(rs.stream.color),
                                   profile.get_stream(rs.stream.depth))
        except RuntimeError as exc:
            self.close()
            raise SourceError(f"RealSense {serial}: {_one_line(exc)}") from None

    def _open_device(self, dev: Any) -> None:
        """The device= path: open the device's sensors and sync them with an rs.syncer."""
        self._dev_info = _device_info(dev)
        color_p = depth_p = None
        color_s = depth_s = None
        offered = []
        for sensor in dev.query_sensors():
            for p in sensor.get_stream_profiles():
                if not p.is_video_stream_profile():
                    continue
                v = p.as_video_stream_profile()
                offered.append(f"{p.stream_name()} {str(p.format()).rsplit('.', 1)[-1]} "
                               f"{v.width()}x{v.height()}@{p.fps()}")
                if (v.width(), v.height(), p.fps()) != (self.width, self.height, self.fps):
                    continue
                if p.stream_type() == rs.stream.depth and p.format() == rs.format.z16:
                    depth_p, depth_s = depth_p or p, depth_s or sensor
                elif (p.stream_type() == rs.stream.color and p.format() in _TO_BGR
                      and (color_p is None or p.format() == rs.format.bgr8)):
                    color_p, color_s = p, sensor
        if color_p is None or depth_p is None:
            raise SourceConfigError(
                f"device offers no color + z16 depth at {self.width}x{self.height}@{self.fps}"
                f" (it offers: {'; '.join(offered) or 'nothing'})")
        try:
            self.depth_scale = dev.first_depth_sensor().get_depth_scale()
        except RuntimeError:
            self.depth_scale = 0.001
        self._device_clock = True
        self._setup_processing(color_p, depth_p)
        self._record_path = None
        try:
            if self.record_raw:
                self._record_path = self._next_record_path()
                self._recorder = rs.recorder(self._record_path, dev)
            self._syncer = rs.syncer(SYNC_QUEUE)
            if color_s == depth_s:
                color_s.open([depth_p, color_p])
                self._sensors = [color_s]
            else:
                depth_s.open(depth_p)
                self._sensors = [depth_s]
                color_s.open(color_p)
                self._sensors.append(color_s)
            for sensor in self._sensors:
                sensor.start(self._syncer)
        except RuntimeError as exc:
            self.close()
            raise SourceError(f"cannot start the RealSense device: {_one_line(exc)}") from None

    def read(self, timeout: float) -> Frame | None:
        """Next aligned frame, None after `timeout` s without one; SourceError when lost."""
        waiter = self._pipe if self._pipe is not None else self._syncer
        if waiter is None:
            raise SourceError("RealSense source is not open")
        try:
            frame = self._wait(waiter, timeout)
        except SourceError:
            self._stalled = True
            raise
        self._stalled = frame is None
        return frame

    def close(self) -> None:
        """Stop streaming; a session that ended stalled gets the camera reset on reopen."""
        if self._stalled and self._pipe is not None:
            self._needs_reset = True
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                _bounded(pipe.stop, STOP_TIMEOUT, "pipeline stop")
            except (RuntimeError, SourceError) as exc:
                log.warning("stopping the RealSense pipeline: %s", _one_line(exc))
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError as exc:
                    log.debug("closing a RealSense sensor: %s", _one_line(exc))
        self._sensors = []
        self._syncer = None
        if self._recorder is not None:
            self._recorder.pause()
            self._recorder = None

    def info(self) -> dict[str, Any]:
        """Camera identity, mode, depth scale and intrinsics for /status."""
        info: dict[str, Any] = {"kind": self.kind, "width": self.width, "height": self.height,
                                "fps": self.fps, "serial": self.serial}
        info.update(self._stream_info())
        info.update(self._dev_info)
        if self._record_path:
            info["recording_to"] = self._record_path
        return info


class RecordingSource(_RealSenseBase):
    """Plays a librealsense .bag or .db3 recording through rs.pipeline, looping by default.

    Frame.timestamp is time.time() at arrival (the recorded clock is in the past). With
    loop=False the end of the file raises SourceEnded; the capture loop then reopens it,
    so the recording plays again after a NO SIGNAL pause.
    """

    kind = "recording"

    def __init__(self, path: str, *, loop: bool = True, realtime: bool = True,
                 align: bool = True, filters: Sequence[str] = ()) -> None:
        super().__init__(align=align, filters=filters)
        self.path = str(path)
        self.loop = loop
        self.realtime = realtime
        self._pipe: Any = None
        self._playback: Any = None
        self._dev_info: dict[str, str] = {}
        self._duration = 0.0

    def open(self) -> None:
        """Open the file; SourceConfigError (one line) when missing or unreadable."""
        _require_rs()
        self.close()
        p = Path(self.path)
        if not p.is_file():
            raise SourceConfigError(f"recording {self.path}: no such file")
        if p.suffix not in (".bag", ".db3"):
            raise SourceConfigError(f"recording {self.path}: expected a .bag or .db3 file")
        cfg = rs.config()
        pipe = rs.pipeline()
        try:
            cfg.enable_device_from_file(str(p), repeat_playback=self.loop)
            profile = _bounded(lambda: pipe.start(cfg), START_TIMEOUT, "playback start",
                               on_late=lambda _p: pipe.stop())
        except RuntimeError as exc:
            raise SourceConfigError(
                f"recording {self.path} cannot be played: {_one_line(exc)}") from None
        self._pipe = pipe
        try:
            dev = profile.get_device()
            self._playback = dev.as_playback()
            self._playback.set_real_time(self.realtime)
            self._duration = self._playback.get_duration().total_seconds()
            self._dev_info = _device_info(dev)
            streams = {s.stream_type(): s for s in profile.get_streams()}
            color = streams.get(rs.stream.color)
            depth = streams.get(rs.stream.depth)
            if color is None:
                raise SourceConfigError(f"recording {self.path} has no color stream")
            if depth is not None:
                try:
                    self.depth_scale = dev.first_depth_sensor().get_depth_scale()
                except RuntimeError:
                    self.depth_scale = 0.001
            self._setup_processing(color, depth)
        except SourceConfigError:
            self.close()
            raise
        except RuntimeError as exc:
            self.close()
            raise SourceConfigError(
                f"recording {self.path} cannot be played: {_one_line(exc)}") from None
        log.info("playing %s (%.1f s, loop=%s, realtime=%s)", self.path, self._duration,
                 self.loop, self.realtime)

    def _ended(self) -> bool:
        return (not self.loop and self._playback is not None
                and self._playback.current_status() == rs.playback_status.stopped)

    def read(self, timeout: float) -> Frame | None:
        """Next frame; SourceEnded once a non-looping recording has delivered its last."""
        if self._pipe is None:
            raise SourceError("recording is not open")
        if self.loop:
            return self._wait(self._pipe, timeout)
        deadline = time.monotonic() + timeout
        while True:  # short waits, so the end is noticed without waiting out `timeout`
            ended = self._ended()
            frame = self._wait(self._pipe, min(0.1, max(deadline - time.monotonic(), 0.0)))
            if frame is not None:
                return frame
            if ended or self._ended():
                raise SourceEnded(f"recording {Path(self.path).name} ended "
                                  f"after {self.frames_read} frames")
            if time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        """Stop playback and release the file. Safe to call twice."""
        pipe, self._pipe, self._playback = self._pipe, None, None
        self.frames_read = 0
        if pipe is not None:
            try:
                _bounded(pipe.stop, STOP_TIMEOUT, "playback stop")
            except (RuntimeError, SourceError) as exc:
                log.warning("stopping playback: %s", _one_line(exc))

    def info(self) -> dict[str, Any]:
        """Path, mode, depth scale and intrinsics of the recording for /status."""
        info: dict[str, Any] = {"kind": self.kind, "path": self.path, "loop": self.loop,
                                "realtime": self.realtime, "duration_s": self._duration}
        info.update(self._stream_info())
        info.update({f"device_{k}": v for k, v in self._dev_info.items()})
        return info
