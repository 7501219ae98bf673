"""H.264 for browsers: BGR frames in, Annex B access units out, through PyAV's libx264.

Settings every WebRTC browser decodes: constrained baseline (profile-level-id 42e01f),
no B-frames, zero-latency tuning (no lookahead, one frame in, one access unit out),
SPS/PPS repeated before every IDR, an IDR every `gop` frames and another whenever a
viewer asks (`force_keyframe`). PyAV keeps the encoder in this process, so a keyframe
can be forced on the very next frame; piping raw frames into an ffmpeg process cannot
(see docs/BENCHMARKS.md for the cost of both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

log = logging.getLogger("h264")



def h264_level(width: int, height: int) -> str:
    """The H.264 level a frame size needs: 3.1 up to 1280x720, else 4.0 (1080p)."""
    return "3.1" if width * height <= 1280 * 720 else "4.0"


def profile_level_id(width: int, height: int) -> str:
    """SDP profile-level-id: constrained baseline (42e0) at the level the encoder uses."""
    return "42e0" + {"3.1": "1f", "4.0": "28"}[h264_level(width, height)]

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9


@dataclass(frozen=True)
class AccessUnit:
    """One encoded frame: Annex B bytes (start codes included) and whether it is an IDR."""

    data: bytes
    keyframe: bool
    pts: int


def split_nals(data: bytes | memoryview) -> list[memoryview]:
    """The NAL units of an Annex B byte string, start codes removed."""
    buf = memoryview(data)
    raw = bytes(buf)
    out: list[memoryview] = []
    i = raw.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        j = raw.find(b"\x00\x00\x01", start)
        end = len(raw) if j < 0 else j
        # A four-byte start code leaves a zero at the end of the previous unit.
        trim = end
        if j >= 0 and trim > start and raw[trim - 1] == 0:
            trim -= 1
        if trim > start:
            out.append(buf[start:trim])
        i = j
    return out


def nal_type(nal: bytes | memoryview) -> int:
    """The nal_unit_type of a NAL unit (without start code)."""
    return nal[0] & 0x1F


def video_context(codec: str, width: int, height: int, fps: float, *, gop: int,
                  pix_fmt: str, threads: int) -> tuple[Any, Any]:
    """(PyAV, an encoder context not yet opened): size, pixel format, frame rate and time
    base, keyframe interval, no B-frames; each encoder adds its own options."""
    import av  # noqa: PLC0415

    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = pix_fmt
    rate = Fraction(fps).limit_denominator(1001)
    ctx.time_base = 1 / rate
    ctx.framerate = rate
    ctx.gop_size = gop
    ctx.max_b_frames = 0
    ctx.thread_count = threads
    return av, ctx


class ZeroLatencyEncoder:
    """An opened PyAV encoder that gives back each frame's access unit at once: frames
    numbered in order, the next one a keyframe when asked (and the first)."""

    def __init__(self, av: Any, ctx: Any) -> None:
        self._av, self._ctx = av, ctx
        self._pts = 0
        self._force = True

    def force_keyframe(self) -> None:
        """Make the next frame a keyframe (an IDR with its parameter sets)."""
        self._force = True

    def _encode(self, frame: Any) -> list[AccessUnit]:
        frame.pts = self._pts
        frame.time_base = self._ctx.time_base
        if self._force:
            frame.pict_type = self._av.video.frame.PictureType.I
            self._force = False
        self._pts += 1
        return self._units(self._ctx.encode(frame))

    def flush(self) -> list[AccessUnit]:
        """What a codec with delay still holds (zero-latency H.264 holds nothing)."""
        return self._units(self._ctx.encode(None))

    @staticmethod
    def _units(packets: Any) -> list[AccessUnit]:
        return [AccessUnit(bytes(p), bool(p.is_keyframe), int(p.pts or 0)) for p in packets]


class H264Encoder(ZeroLatencyEncoder):
    """libx264 through PyAV, set up for WebRTC viewers."""

    def __init__(self, width: int, height: int, fps: float, bitrate: int, gop: int, *,
                 threads: int = 2, preset: str = "ultrafast", vbv_seconds: float = 1.0) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 needs an even frame size, not {width}x{height}")
        self.width, self.height, self.gop = width, height, gop
        av, ctx = video_context("libx264", width, height, fps, gop=gop, pix_fmt="yuv420p",
                                threads=threads)
        ctx.bit_rate = bitrate
        ctx.thread_type = "SLICE"
        self.max_bitrate = bitrate
        self.bitrate = bitrate
        # VBV through the codec context, not x264-params: libavcodec re-applies the
        # context's maxrate/bufsize on every frame, and x264 takes a new bit rate at run
        # time only while VBV stays on (see set_bitrate).
        ctx.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "level": h264_level(width, height),
            "forced-idr": "1",
            "maxrate": str(bitrate),
            "bufsize": str(max(int(bitrate * vbv_seconds), 1000)),
            "x264-params": (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:"
                            "repeat-headers=1:aud=0:nal-hrd=none"),
        }
        ctx.open()
        super().__init__(av, ctx)

    def set_bitrate(self, bitrate: int) -> None:
        """Aim at `bitrate` from the next frame on (at most the rate it was opened with).

        libx264 reconfigures in place (x264_encoder_reconfig): no keyframe, no re-open;
        the average follows within about a second (docs/BENCHMARKS.md).
        """
        bitrate = max(min(int(bitrate), self.max_bitrate), 1000)
        if bitrate != self.bitrate:
            self.bitrate = bitrate
            self._ctx.bit_rate = bitrate

    @staticmethod
    def to_i420(bgr: np.ndarray) -> np.ndarray:
        """BGR to planar I420 (OpenCV's SIMD conversion; also the copy out of shared memory)."""
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)

    def encode(self, bgr: np.ndarray) -> list[AccessUnit]:
        """Encode one BGR frame; zero-latency tuning gives back its access unit at once."""
        return self.encode_i420(self.to_i420(bgr))

    def encode_i420(self, i420: np.ndarray) -> list[AccessUnit]:
        """Encode one I420 frame (height * 3 / 2 rows of width bytes)."""
        return self._encode(self._av.VideoFrame.from_ndarray(i420, format="yuv420p"))

    def close(self) -> None:
        """Release the encoder (pending frames are dropped: zero latency leaves none)."""
        self._ctx = None  # type: ignore[assignment]
