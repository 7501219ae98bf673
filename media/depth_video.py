"""Depth as 10-bit video: codes (media/depthcode.py) in luma, through PyAV, and back.

`DepthVideoEncoder` writes H.264 High 10 (libx264, 4:2:0, 10 bits) by default: an Annex B
access unit per frame, no B-frames, zero latency, SPS/PPS before every IDR, an IDR every
`gop` frames and whenever a new viewer asks. It aims at a constant quality (`crf`, with
psychovisual tuning off: depth is measured, not looked at) under a bit rate cap (VBV at
`bitrate`): every frame is as exact from the first keyframe on, and a busy scene costs
accuracy rather than the link. The codecs compared for docs/DEPTH_VIDEO.md
(SVT-AV1 10-bit, x265 10-bit) go through the same class. `DepthVideoDecoder` turns the
access units back into codes with libavcodec, as a script or a receiver would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from media.depthcode import CHROMA_CODE
from media.h264 import (
    AccessUnit,
    ZeroLatencyEncoder,
    h264_level,
    nal_type,
    split_nals,
    video_context,
)

CODECS = {
    # name: (libav encoder, decoder, WebCodecs codec string)
    "h264": ("libx264", "h264", "avc1.6e0028"),
    "av1": ("libsvtav1", "libdav1d", "av01.0.08M.10"),
    "hevc": ("libx265", "hevc", "hvc1.2.4.L120.90"),
}
"""The candidate codecs (docs/DEPTH_VIDEO.md); h264 is the one the server streams."""


MAPPING_UUID = bytes.fromhex("6d6574726573a10bde70746876696400")
"""The SEI (user data unregistered) that carries the mapping in the stream itself."""
_START = b"\x00\x00\x00\x01"


def mapping_sei(doc: dict[str, Any]) -> bytes:
    """An Annex B SEI NAL unit with `doc` as JSON: what a recorded stream needs to be read
    as metres once it has left the server (MPEG-TS over the push, a file)."""
    payload = MAPPING_UUID + json.dumps(doc, separators=(",", ":")).encode()
    size, body = len(payload), bytearray([6, 5])  # NAL type 6; payload type 5
    while size >= 255:
        body.append(255)
        size -= 255
    body.append(size)
    body += payload
    body.append(0x80)  # rbsp trailing bits
    return _START + _escape(bytes(body))


def _escape(rbsp: bytes) -> bytes:
    """Emulation prevention: 0x03 after every two zero bytes followed by 0-3."""
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def with_mapping(au: bytes, sei: bytes) -> bytes:
    """The access unit with `sei` placed before its first slice, as SEI must be."""
    pos = au.find(b"\x00\x00\x01")
    while 0 <= pos < len(au) - 3:
        if au[pos + 3] & 0x1F in (1, 5):
            start = pos - 1 if pos > 0 and au[pos - 1] == 0 else pos
            return au[:start] + sei + au[start:]
        pos = au.find(b"\x00\x00\x01", pos + 3)
    return au


def read_mapping(au: bytes) -> dict[str, Any] | None:
    """The mapping a `mapping_sei` in this access unit carries, or None."""
    for nal in split_nals(au):
        raw = bytes(nal).replace(b"\x00\x00\x03", b"\x00\x00")
        if nal_type(raw) != 6 or len(raw) < 2 or raw[1] != 5:
            continue
        i, size = 2, 0
        while raw[i] == 255:
            size += 255
            i += 1
        size += raw[i]
        payload = raw[i + 1:i + 1 + size]
        if payload[:16] == MAPPING_UUID:
            try:
                return json.loads(payload[16:])
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class VideoSettings:
    """What a depth-video encoder is opened with."""

    codec: str = "h264"
    bitrate: int = 3_000_000
    """The cap (VBV maximum rate); SVT-AV1 and x265 aim at it instead (constant rate)."""
    crf: float = 10.0
    """libx264's constant quality (10-bit scale): lower is more exact and larger."""
    gop: int = 60
    preset: str = "superfast"
    threads: int = 2


def webcodecs_codec(codec: str, width: int, height: int) -> str:
    """The WebCodecs codec string of the stream: H.264 High 10 at the level the size needs."""
    if codec == "h264":
        return "avc1.6e00" + {"3.1": "1f", "4.0": "28"}[h264_level(width, height)]
    return CODECS[codec][2]


class DepthVideoEncoder(ZeroLatencyEncoder):
    """10-bit depth codes in, one access unit per frame out (zero latency)."""

    def __init__(self, width: int, height: int, fps: float, settings: VideoSettings) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"depth video needs an even frame size, not {width}x{height}")
        self.width, self.height, self.settings = width, height, settings
        av, ctx = video_context(CODECS[settings.codec][0], width, height, fps,
                                gop=settings.gop, pix_fmt="yuv420p10le",
                                threads=settings.threads)
        if settings.codec != "h264":
            ctx.bit_rate = settings.bitrate
        ctx.options = self._options(settings, width, height)
        ctx.open()
        super().__init__(av, ctx)
        self._frame = np.full((height * 3 // 2, width), CHROMA_CODE, np.uint16)

    @staticmethod
    def _options(s: VideoSettings, width: int, height: int) -> dict[str, str]:
        if s.codec == "h264":
            return {
                "preset": s.preset, "tune": "zerolatency", "profile": "high10",
                "level": h264_level(width, height), "forced-idr": "1", "crf": f"{s.crf:g}",
                "maxrate": str(s.bitrate), "bufsize": str(s.bitrate),
                "x264-params": (f"keyint={s.gop}:min-keyint={s.gop}:scenecut=0:bframes=0:"
                                "repeat-headers=1:aud=0:nal-hrd=none:aq-mode=0:psy=0"),
            }
        if s.codec == "av1":
            return {"preset": s.preset, "svtav1-params":
                    f"rc=2:pred-struct=1:keyint={s.gop}:scd=0:lookahead=0"}
        return {"preset": s.preset, "tune": "zerolatency",
                "x265-params": f"keyint={s.gop}:min-keyint={s.gop}:scenecut=0:bframes=0:"
                               "repeat-headers=1:log-level=error"}

    def encode(self, codes: np.ndarray) -> list[AccessUnit]:
        """Encode one frame of codes (height x width, uint16, 0..1023)."""
        self._frame[: self.height] = codes
        return self._encode(self._av.VideoFrame.from_ndarray(self._frame, format="yuv420p10le"))


class DepthVideoDecoder:
    """Access units in, 10-bit luma codes out (height x width, uint16)."""

    def __init__(self, codec: str = "h264") -> None:
        import av  # noqa: PLC0415

        self._av = av
        self._ctx: Any = av.CodecContext.create(CODECS[codec][1], "r")

    def decode(self, data: bytes) -> list[np.ndarray]:
        """The frames an access unit completes (one, with zero-latency streams)."""
        out = []
        for frame in self._ctx.decode(self._av.Packet(data)):
            out.append(_luma10(frame))
        return out

    def flush(self) -> list[np.ndarray]:
        """Frames still held by the decoder at the end of a stream."""
        return [_luma10(f) for f in self._ctx.decode(None)]


def _luma10(frame: Any) -> np.ndarray:
    """The luma plane of a 10-bit 4:2:0 frame as uint16 codes."""
    if frame.format.name != "yuv420p10le":
        frame = frame.reformat(format="yuv420p10le")
    plane = frame.planes[0]
    row = plane.line_size // 2
    buf = np.frombuffer(plane, np.uint16).reshape(-1, row)
    return buf[: frame.height, : frame.width].copy()
