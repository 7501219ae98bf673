"""The control block: one small shared-memory segment of counters and flags.

Every numeric field has exactly one writer process (capture, encoder, web or supervisor),
so no lock is needed; readers tolerate a value that is one update old. The settings
document has two writers (the web's POST /filters and the display window's keys), which
take a file lock around their read-modify-write. Besides the numeric
fields it holds two short JSON documents (source info, runtime settings), each guarded
by a version counter.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from typing import Any, TypeVar

import numpy as np

STREAMS = ("color", "depth", "combined", "metric")
"""JPEG streams: color, depth drawn for eyes, side by side, and depth coded for machines."""
_FIRST_STREAMS = STREAMS[:3]  # the fields of streams added later are appended at the end


def _stream_fields(stream: str) -> tuple[str, ...]:
    """The encoder's and the sinks' fields of one stream added after the first three."""
    return (*(f"{k}_{stream}" for k in ("encoded", "encode_fps", "encode_ms")),
            f"viewers_{stream}", f"sink_{stream}")


FIELDS: tuple[str, ...] = (
    # capture
    "hb_capture", "frames_captured", "capture_fps", "capture_ms", "source_ok",
    # encoder
    "hb_encoder",
    *(f"{k}_{s}" for s in _FIRST_STREAMS for k in ("encoded", "encode_fps", "encode_ms")),
    # web / push sink (viewers per stream are what make the encoder work)
    "hb_web",
    *(f"viewers_{s}" for s in _FIRST_STREAMS),
    # a sink besides the web (push, recorder) wants a stream encoded
    *(f"sink_{s}" for s in _FIRST_STREAMS),
    "hb_tap", "restarts_tap", "pid_tap",
    # supervisor
    "started_at", "restarts_capture", "restarts_encoder", "restarts_web",
    "pid_capture", "pid_encoder", "pid_web",
    "hb_push", "restarts_push", "pid_push", "restarts_gps", "pid_gps",
    "info_version", "settings_version",
    # display child: heartbeat, supervision, and the streams its window shows
    "hb_display", "restarts_display", "pid_display", "display_color", "display_depth",
    # the metric depth stream
    *_stream_fields("metric"),
    # Foxglove WebSocket and MCAP recorder children (sink_<stream>_<child>: one writer each)
    "hb_foxglove", "restarts_foxglove", "pid_foxglove", "sink_color_foxglove",
    "hb_mcap", "restarts_mcap", "pid_mcap", "sink_color_mcap",
    # push sink: the quality and width it asks the encoder to use for its stream (0: as
    # configured), so an adaptive push shrinks frames where they are encoded, once
    *(f"push_{k}_{s}" for s in ("color", "depth", "combined") for k in ("quality", "width")),
    # H.264 stage (writer: h264 child); sink_h264 is for sinks besides WebRTC (push)
    "hb_h264", "h264_frames", "h264_keyframes", "h264_fps", "h264_bps", "h264_encode_ms",
    "h264_bytes", "sink_h264",
    # Janus child: gateway state and WebRTC viewers (what makes the H.264 stage work)
    "hb_janus", "janus_up", "janus_pid", "janus_starts", "webrtc_viewers",
    # supervisor
    "restarts_h264", "pid_h264", "restarts_janus", "pid_janus",
    # robotics children: /camera/h264 subscribers each (writers: foxglove, mcap child)
    "sink_h264_foxglove", "sink_h264_mcap",
    # MCAP recorder: recording (1) or stopped (0: a full disk), the open file's index in a
    # split series, depth frames dropped because PNG encoding fell behind (writer: mcap)
    "mcap_recording", "mcap_file_index", "mcap_depth_dropped",
    # H.264 push (writer: push): the bit rate it asks the stage for (0: as configured) and
    # a counter it bumps to ask for a keyframe (every (re)connect); the stage's current
    # target bit rate (writer: h264)
    "push_h264_bitrate", "push_h264_keyframes", "h264_bitrate",
    # IMU (writer: capture): samples written to the IMU ring, and each stream's rate over
    # the last second of the capture process's clock
    "imu_samples", "imu_accel_hz", "imu_gyro_hz",
    # depth-video stage (writer: depthvideo child), its supervision, and the web's count of
    # /depth-video clients and a counter it bumps to ask for a keyframe (writer: web)
    "hb_depthvideo", "dv_frames", "dv_keyframes", "dv_fps", "dv_bps", "dv_encode_ms",
    "dv_bytes", "restarts_depthvideo", "pid_depthvideo", "dv_viewers", "dv_keyframe_requests",
    # the push carrying the depth video beside colour (writer: push), as sink_h264 does
    "sink_dv", "push_dv_keyframes",
)
_INDEX = {name: i for i, name in enumerate(FIELDS)}
NUM_FIELDS = 128
_NUM_BYTES = 8 * NUM_FIELDS
_TEXT_BYTES = 8192
_INFO_OFF = _NUM_BYTES
_SETTINGS_OFF = _NUM_BYTES + _TEXT_BYTES
SIZE = _NUM_BYTES + 2 * _TEXT_BYTES
assert len(FIELDS) <= NUM_FIELDS
# Every field that makes the encoder produce a stream: viewers_<s>, sink_<s>, display_<s>,
# sink_<s>_<child>.
_WANT = {s: [i for i, name in enumerate(FIELDS)
             if name in (f"viewers_{s}", f"sink_{s}", f"display_{s}")
             or name.startswith(f"sink_{s}_")] for s in STREAMS}


class Control:
    """Named float fields plus two JSON documents in one shared-memory segment."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm = shm
        self.owner = owner
        self._arr = np.ndarray((NUM_FIELDS,), dtype=np.float64, buffer=shm.buf[:_NUM_BYTES])

    @classmethod
    def create(cls, name: str) -> Control:
        """Create (and own) the block, zeroed, with the start time set."""
        shm = shared_memory.SharedMemory(name=name, create=True, size=SIZE)
        shm.buf[:SIZE] = bytes(SIZE)
        ctl = cls(shm, owner=True)
        ctl["started_at"] = time.time()
        return ctl

    @classmethod
    def attach(cls, name: str) -> Control:
        """Attach to a block created by another process."""
        return cls(shared_memory.SharedMemory(name=name, create=False), owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def __getitem__(self, key: str) -> float:
        return float(self._arr[_INDEX[key]])

    def __setitem__(self, key: str, value: float) -> None:
        self._arr[_INDEX[key]] = value

    def add(self, key: str, delta: float = 1.0) -> None:
        """Increment a counter (only from the field's single writer)."""
        self._arr[_INDEX[key]] += delta

    def snapshot(self) -> dict[str, float]:
        """All numeric fields at once."""
        values = self._arr.tolist()
        return {name: values[i] for i, name in enumerate(FIELDS)}

    def viewers(self, stream: str) -> int:
        """Web viewers plus every other sink (push, recorder, display, robotics) of a stream."""
        return int(self._arr[_WANT[stream]].sum())

    # -- JSON documents -------------------------------------------------------------
    def _write_doc(self, offset: int, version_key: str, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, separators=(",", ":"), default=str).encode()
        if len(data) > _TEXT_BYTES - 4:
            raise ValueError("document too large for the control block")
        self._shm.buf[offset : offset + 4] = len(data).to_bytes(4, "little")
        self._shm.buf[offset + 4 : offset + 4 + len(data)] = data
        self.add(version_key)

    def _read_doc(self, offset: int, version_key: str) -> dict[str, Any]:
        for _ in range(4):
            v1 = self[version_key]
            n = int.from_bytes(self._shm.buf[offset : offset + 4], "little")
            if n == 0 or n > _TEXT_BYTES - 4:
                return {}
            raw = bytes(self._shm.buf[offset + 4 : offset + 4 + n])
            if self[version_key] == v1:
                try:
                    return json.loads(raw)
                except ValueError:
                    continue
        return {}

    def set_info(self, doc: dict[str, Any]) -> None:
        """Source description for /status (written by the capture process)."""
        self._write_doc(_INFO_OFF, "info_version", doc)

    def info(self) -> dict[str, Any]:
        return self._read_doc(_INFO_OFF, "info_version")

    def set_settings(self, doc: dict[str, Any]) -> None:
        """Runtime settings changed from the web (e.g. filters), read by the pipeline."""
        with self._settings_lock():
            self._write_doc(_SETTINGS_OFF, "settings_version", doc)

    def update_settings(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Read, change and write the settings as one step; returns what was written.

        Two processes change settings (the web's POST /filters, the display window's
        keys), so the read-modify-write holds an exclusive lock on the segment's file. The
        kernel drops a flock when its holder dies, so a killed writer never blocks the other.
        """
        with self._settings_lock():
            doc = change(self.settings())
            self._write_doc(_SETTINGS_OFF, "settings_version", doc)
            return doc

    @contextlib.contextmanager
    def _settings_lock(self) -> Iterator[None]:
        try:
            fd = os.open(f"/dev/shm/{self._shm.name.lstrip('/')}", os.O_RDONLY)
        except OSError:  # no /dev/shm (not Linux): one writer at a time is the caller's job
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def settings(self) -> dict[str, Any]:
        return self._read_doc(_SETTINGS_OFF, "settings_version")

    def close(self) -> None:
        """Drop the mapping (and remove the segment if we own it)."""
        del self._arr
        try:
            self._shm.close()
        except BufferError:
            pass
        if self.owner:
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass


SLOT_NAME_KEY = "camera"
"""Settings-document key that names the camera a spare slot was given (hot-plug)."""
T = TypeVar("T")


def name_slot(control: Control, name: str) -> None:
    """Give a spare camera slot its camera: the last step of waking it (its readers then
    attach its rings)."""
    control.update_settings(lambda doc: {**doc, SLOT_NAME_KEY: name})


def claimed(slots: list[tuple[Control, T]]) -> list[tuple[str, T]]:
    """The spare slots whose control block now names a camera, as (name, what the caller
    keeps with the slot); they leave `slots` and their control blocks are closed."""
    out = []
    for control, kept in list(slots):
        name = control.settings().get(SLOT_NAME_KEY)
        if name:
            slots.remove((control, kept))
            control.close()
            out.append((str(name), kept))
    return out
