"""JPEG test corpus built at test time with real encoders (libjpeg-turbo, Pillow, ffmpeg).

Each frame exercises a structural feature the stream parser must get right: stuffed FF00 bytes,
restart markers, progressive multi-scan files, comments, an EXIF thumbnail with its own SOI/EOI,
fill bytes before markers, and ffmpeg's MJPEG output.
"""

from __future__ import annotations

import functools
import io
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image
from turbojpeg import (
    TJFLAG_PROGRESSIVE,
    TJPF_GRAY,
    TJPF_RGB,
    TJSAMP_420,
    TJSAMP_444,
    TJSAMP_GRAY,
    TurboJPEG,
)

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
SOS = b"\xff\xda"
RST_MARKERS = tuple(bytes([0xFF, code]) for code in range(0xD0, 0xD8))


@dataclass(frozen=True)
class CorpusFrame:
    """One complete JPEG with a name describing what it exercises."""

    name: str
    data: bytes
    size: tuple[int, int]


def noisy_image(width: int, height: int, seed: int, channels: int = 3) -> np.ndarray:
    """Return a gradient plus strong noise, so the entropy data is dense and contains FF00."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 70, (height, width, channels)).astype(np.float32)
    img = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    return img if channels == 3 else img[:, :, :1]


def entropy_region(jpeg: bytes) -> bytes:
    """Bytes from the first SOS marker on: scan headers and entropy-coded data (approximate)."""
    return jpeg[jpeg.index(SOS) :]


def count_rst(jpeg: bytes) -> int:
    """Number of restart markers FFD0-FFD7 after the first SOS."""
    region = entropy_region(jpeg)
    return sum(region.count(marker) for marker in RST_MARKERS)


def build_exif_with_thumbnail(thumbnail: bytes, padding: int = 0) -> bytes:
    """Build an EXIF APP1 payload (big-endian TIFF) whose IFD1 carries ``thumbnail``.

    ``padding`` zero bytes are placed before the thumbnail, moving it deeper into the segment.
    """
    # Layout: "Exif\0\0" | TIFF header (8) | IFD0: 1 entry (18) | IFD1: 3 entries (42) |
    # padding | thumbnail.
    ifd0_offset = 8
    ifd1_offset = ifd0_offset + 2 + 12 + 4
    thumb_offset = ifd1_offset + 2 + 3 * 12 + 4 + padding
    tiff = b"MM\x00\x2a" + struct.pack(">I", ifd0_offset)
    # IFD0: Orientation = 1 (SHORT), then the offset of IFD1.
    tiff += struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 1, 0)
    tiff += struct.pack(">I", ifd1_offset)
    # IFD1: Compression = 6 (JPEG), JPEGInterchangeFormat, JPEGInterchangeFormatLength.
    tiff += struct.pack(">H", 3)
    tiff += struct.pack(">HHIHH", 0x0103, 3, 1, 6, 0)
    tiff += struct.pack(">HHII", 0x0201, 4, 1, thumb_offset)
    tiff += struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))
    tiff += struct.pack(">I", 0) + bytes(padding)
    if len(tiff) != thumb_offset:
        raise AssertionError("EXIF layout arithmetic is wrong")
    return b"Exif\x00\x00" + tiff + thumbnail


def insert_fill_bytes(jpeg: bytes, count: int = 3) -> bytes:
    """Insert ``count`` FF fill bytes before each header marker and before EOI (valid JPEG)."""
    out = bytearray(jpeg[:2])
    pos = 2
    fill = b"\xff" * count
    while True:
        if jpeg[pos] != 0xFF:
            raise ValueError("expected a marker")
        code = jpeg[pos + 1]
        length = struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        out += fill + jpeg[pos : pos + 2 + length]
        pos += 2 + length
        if code == 0xDA:
            break
    body = jpeg[pos:-2]
    return bytes(out + body + fill + jpeg[-2:])


def pillow_jpeg(img: np.ndarray, **save_args: object) -> bytes:
    """Encode ``img`` with Pillow's JPEG writer (libjpeg) using ``save_args``."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **save_args)
    return buf.getvalue()


def ffmpeg_frames(width: int = 128, height: int = 96, count: int = 4) -> list[bytes]:
    """Encode ``count`` noisy test-pattern frames with ffmpeg's mjpeg encoder.

    Each frame's exact bytes come from the image2 muxer (one file per frame); the raw mjpeg
    muxer output of the same run must equal their concatenation, which cross-checks boundaries.
    Returns an empty list when ffmpeg is not installed.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return []
    source = f"testsrc=size={width}x{height}:rate=5,noise=alls=40:allf=t"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                source,
                "-frames:v",
                str(count),
                "-q:v",
                "3",
                "-f",
                "image2",
                str(out / "f%03d.jpg"),
                "-frames:v",
                str(count),
                "-q:v",
                "3",
                "-f",
                "mjpeg",
                str(out / "all.mjpeg"),
            ],
            check=True,
            timeout=30,
        )
        frames = [p.read_bytes() for p in sorted(out.glob("f*.jpg"))]
        if b"".join(frames) != (out / "all.mjpeg").read_bytes():
            raise AssertionError("ffmpeg image2 frames differ from its mjpeg stream")
    return frames


@functools.cache
def build_corpus() -> tuple[CorpusFrame, ...]:
    """Return the corpus (cached: built once per test session)."""
    tj = TurboJPEG()
    rgb = noisy_image(64, 48, seed=1)
    rgb2 = noisy_image(96, 64, seed=2)
    gray = noisy_image(80, 48, seed=3, channels=1)
    frames = [
        CorpusFrame("turbo-420", tj.encode(rgb, 92, TJPF_RGB, TJSAMP_420), (64, 48)),
        CorpusFrame("turbo-444", tj.encode(rgb2, 85, TJPF_RGB, TJSAMP_444), (96, 64)),
        CorpusFrame("turbo-gray", tj.encode(gray, 90, TJPF_GRAY, TJSAMP_GRAY), (80, 48)),
        CorpusFrame(
            "turbo-progressive",
            tj.encode(rgb, 90, TJPF_RGB, TJSAMP_420, TJFLAG_PROGRESSIVE),
            (64, 48),
        ),
        CorpusFrame(
            "pillow-restart-blocks",
            pillow_jpeg(rgb2, quality=90, restart_marker_blocks=2),
            (96, 64),
        ),
        CorpusFrame(
            "pillow-restart-rows-progressive",
            pillow_jpeg(rgb, quality=88, restart_marker_rows=1, progressive=True),
            (64, 48),
        ),
        CorpusFrame(
            "pillow-comment-optimized",
            pillow_jpeg(rgb2, quality=80, optimize=True, comment=b"corpus \xff\xd9 comment"),
            (96, 64),
        ),
    ]
    thumbnail = pillow_jpeg(noisy_image(24, 16, seed=4), quality=90)
    exif = build_exif_with_thumbnail(thumbnail)
    frames.append(
        CorpusFrame("pillow-exif-thumbnail", pillow_jpeg(rgb, quality=90, exif=exif), (64, 48))
    )
    frames.append(
        CorpusFrame(
            "fill-bytes", insert_fill_bytes(tj.encode(rgb2, 90, TJPF_RGB, TJSAMP_420)), (96, 64)
        )
    )
    for i, data in enumerate(ffmpeg_frames()):
        frames.append(CorpusFrame(f"ffmpeg-mjpeg-{i}", data, (128, 96)))
    return tuple(frames)


def exif_thumbnail_of(frame: CorpusFrame) -> bytes:
    """Return the JPEG thumbnail that Pillow's EXIF reader finds in the frame's IFD1."""
    with Image.open(io.BytesIO(frame.data)) as im:
        payload = im.info["exif"]
        ifd1 = im.getexif().get_ifd(ExifTags.IFD.IFD1)
    tiff = payload[len(b"Exif\x00\x00") :]
    offset, length = ifd1[0x0201], ifd1[0x0202]
    return tiff[offset : offset + length]
