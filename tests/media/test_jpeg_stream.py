"""Tests for the incremental JPEG stream splitter used by the raw-TCP MJPEG ingest.

Streams are built from a corpus made by real encoders, mixed with garbage and truncated
frames, and replayed under many chunkings (every byte, every 2-chunk split, random splits).
"""

from __future__ import annotations

import io
import logging
import random
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from turbojpeg import TJPF_GRAY, TJPF_RGB, TJSAMP_420, TJSAMP_GRAY, TurboJPEG

from media import jpeg_stream
from media.jpeg_stream import DEFAULT_MAX_FRAME_BYTES, JpegStreamParser
from tests.conftest import require
from tests.media.jpeg_corpus import (
    EOI,
    SOI,
    SOS,
    CorpusFrame,
    build_corpus,
    build_exif_with_thumbnail,
    count_rst,
    entropy_region,
    exif_thumbnail_of,
    noisy_image,
    pillow_jpeg,
)

pytestmark = pytest.mark.timeout(120)

SOI_START = b"\xff\xd8\xff"


# -- helpers ---------------------------------------------------------------------------------


def corpus() -> tuple[CorpusFrame, ...]:
    """The session-cached corpus of real encoder outputs."""
    return build_corpus()


def by_name(name: str) -> bytes:
    """Bytes of the corpus frame called ``name``."""
    return next(f.data for f in corpus() if f.name == name)


def check_invariants(parser: JpegStreamParser, fed: int, emitted: Sequence[bytes]) -> None:
    """Assert the properties that must hold after every feed()."""
    assert parser.buffered_bytes <= parser.max_frame_bytes
    assert parser.frames == len(emitted)
    accounted = (
        parser.garbage_bytes
        + parser.dropped_bytes
        + sum(len(f) for f in emitted)
        + parser.buffered_bytes
    )
    assert accounted == fed


def feed_all(
    parser: JpegStreamParser, chunks: Iterable[bytes], check_each: bool = True
) -> list[bytes]:
    """Feed ``chunks`` in order, checking the invariants after each feed."""
    out: list[bytes] = []
    fed = 0
    for chunk in chunks:
        frames = parser.feed(chunk)
        for frame in frames:
            assert frame.startswith(SOI) and frame.endswith(EOI)
            assert len(frame) <= parser.max_frame_bytes
        out += frames
        fed += len(chunk)
        if check_each:
            check_invariants(parser, fed, out)
    check_invariants(parser, fed, out)
    return out


def split_by_sizes(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """Cut ``data`` into pieces whose sizes cycle through ``sizes``."""
    chunks = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        chunks.append(data[pos : pos + size])
        pos += size
        i += 1
    return chunks


def scan_data_start(jpeg: bytes) -> int:
    """Offset of the first entropy-coded byte of a single-scan JPEG without thumbnail."""
    sos = jpeg.index(SOS)
    return sos + 2 + struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]


def header_marker_offsets(jpeg: bytes) -> list[int]:
    """Offsets of the header markers (after SOI, up to and including the first SOS)."""
    offsets = []
    pos = 2
    while True:
        offsets.append(pos)
        if jpeg[pos + 1] == 0xDA:
            return offsets
        pos += 2 + struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]


def starts_frame_exactly_at_end(garbage: bytes) -> bool:
    """True if ``garbage`` followed by a frame has its first frame start at the frame."""
    return (garbage + SOI_START).find(SOI_START) == len(garbage)


def random_garbage(rng: random.Random, size: int, stray_ff: bool) -> bytes:
    """Random bytes that do not start a frame (with or without stray FF/marker-like bytes)."""
    while True:
        if stray_ff:
            alphabet = [0xFF, 0xFF, 0xD8, 0xD9, 0xDA, 0x00, 0xD0, 0xC4, 0x01]
            data = bytes(
                rng.choice(alphabet) if rng.random() < 0.5 else rng.randrange(256)
                for _ in range(size)
            )
        else:
            data = bytes(rng.randrange(255) for _ in range(size))
        if starts_frame_exactly_at_end(data):
            return data


@dataclass
class MixedStream:
    """A stream with its expected frames and the exact counters it must produce."""

    data: bytes
    frames: list[bytes]
    garbage: int
    truncated: int
    truncated_bytes: int


def truncated_piece(frame: bytes, rng: random.Random) -> bytes:
    """A prefix of ``frame`` cut inside its scan data or at a header marker boundary."""
    if rng.random() < 0.7:
        cut = rng.randrange(scan_data_start(frame), len(frame))
    else:
        cut = rng.choice(header_marker_offsets(frame))
    return frame[:cut]


def build_mixed_stream(frames: Sequence[bytes], seed: int) -> MixedStream:
    """Interleave ``frames`` with garbage, stray-FF garbage and truncated frames."""
    rng = random.Random(seed)
    truncatable = [by_name(n) for n in ("turbo-420", "turbo-gray", "pillow-restart-blocks")]
    parts: list[bytes] = []
    garbage = truncated = truncated_bytes = 0
    fixed_garbage = b"\xff" * 7 + b"\xff\xd8\x00\xff\xd9\xffxyz\xd8\xff\xff"
    for i, frame in enumerate(frames):
        kind = i % 4
        if kind == 1:
            g = random_garbage(rng, rng.randrange(1, 300), stray_ff=False)
        elif kind == 2:
            g = random_garbage(rng, rng.randrange(1, 300), stray_ff=True)
        elif kind == 3:
            g = fixed_garbage
        else:
            g = b""
        assert starts_frame_exactly_at_end(g)
        parts.append(g)
        garbage += len(g)
        if i % 3 == 1:
            piece = truncated_piece(rng.choice(truncatable), rng)
            parts.append(piece)
            truncated += 1
            truncated_bytes += len(piece)
        parts.append(frame)
    tail = random_garbage(rng, 50, stray_ff=True) + b"\xff\xd8"
    parts.append(tail)
    garbage += len(tail)
    return MixedStream(b"".join(parts), list(frames), garbage, truncated, truncated_bytes)


def assert_mixed_result(stream: MixedStream, parser: JpegStreamParser, out: list[bytes]) -> None:
    """Close the parser and check frames and every counter against ``stream``."""
    parser.close()
    assert out == stream.frames
    assert parser.frames == len(stream.frames)
    assert parser.garbage_bytes == stream.garbage
    assert parser.dropped_truncated == stream.truncated
    assert parser.dropped_bytes == stream.truncated_bytes
    assert parser.dropped_invalid == 0
    assert parser.dropped_oversize == 0
    assert parser.buffered_bytes == 0


def naive_split(stream: bytes) -> list[bytes]:
    """Split at every SOI..first EOI: what a marker-unaware splitter does."""
    frames = []
    pos = 0
    while (start := stream.find(SOI, pos)) >= 0 and (end := stream.find(EOI, start)) >= 0:
        frames.append(stream[start : end + 2])
        pos = end + 2
    return frames


@pytest.fixture(scope="module")
def all_frames() -> list[bytes]:
    """Every corpus frame, in corpus order."""
    return [f.data for f in corpus()]


@pytest.fixture(scope="module")
def mixed() -> MixedStream:
    """All corpus frames mixed with garbage and truncated frames (~90 KB)."""
    return build_mixed_stream([f.data for f in corpus()], seed=11)


@pytest.fixture(scope="module")
def small_mixed() -> MixedStream:
    """Progressive, EXIF-thumbnail and fill-byte frames with garbage (~14 KB)."""
    names = ("turbo-progressive", "pillow-exif-thumbnail", "fill-bytes")
    return build_mixed_stream([by_name(n) for n in names], seed=5)


# -- the corpus really contains the features -------------------------------------------------


def test_corpus_frames_are_real_decodable_jpegs() -> None:
    """Every corpus frame decodes with Pillow to its nominal size."""
    for frame in corpus():
        with Image.open(io.BytesIO(frame.data)) as im:
            im.load()
            assert im.format == "JPEG"
            assert im.size == frame.size, frame.name
        assert frame.data.startswith(SOI_START) and frame.data.endswith(EOI)


def test_corpus_exercises_stuffing_restarts_progressive_comment_and_fill() -> None:
    """The corpus contains FF00, RSTn with DRI, multi-scan SOF2, COM and fill bytes."""
    frames = {f.name: f.data for f in corpus()}
    for name, data in frames.items():
        assert entropy_region(data).count(b"\xff\x00") >= 2, name
    for name in ("pillow-restart-blocks", "pillow-restart-rows-progressive"):
        assert b"\xff\xdd\x00\x04" in frames[name]  # DRI
        assert count_rst(frames[name]) >= 4, name
    for name in ("turbo-progressive", "pillow-restart-rows-progressive"):
        assert frames[name].count(SOS) >= 5, name
        assert b"\xff\xc2" in frames[name]  # SOF2
    assert b"\xff\xfe" in frames["pillow-comment-optimized"]
    assert b"\xff\xff\xff\xff\xd9" in frames["fill-bytes"]
    assert b"\xff\xff\xff\xff\xdb" in frames["fill-bytes"]
    sofs = {bytes([0xFF, c]) for c in (0xC0, 0xC1, 0xC2)}
    assert all(
        any(s in d[: scan_data_start(d)] for s in sofs)
        for d in frames.values()
        if d.count(SOS) == 1
    )


def test_corpus_exif_thumbnail_is_a_nested_jpeg() -> None:
    """Pillow finds a complete, decodable JPEG thumbnail inside the frame's APP1."""
    frame = next(f for f in corpus() if f.name == "pillow-exif-thumbnail")
    thumbnail = exif_thumbnail_of(frame)
    assert thumbnail.startswith(SOI_START) and thumbnail.endswith(EOI)
    with Image.open(io.BytesIO(thumbnail)) as im:
        im.load()
        assert im.size == (24, 16)
    offset = frame.data.index(thumbnail)
    assert 0 < offset and offset + len(thumbnail) < len(frame.data) - 1000
    # The APP1 segment encloses the thumbnail.
    app1 = frame.data.index(b"\xff\xe1")
    app1_len = struct.unpack(">H", frame.data[app1 + 2 : app1 + 4])[0]
    assert app1 < offset and offset + len(thumbnail) <= app1 + 2 + app1_len


def test_corpus_ffmpeg_frames_present() -> None:
    """ffmpeg's mjpeg encoder contributed its frames."""
    require("ffmpeg")  # the corpus is built with it when present: make setup installs it
    names = [f.name for f in corpus() if f.name.startswith("ffmpeg-mjpeg")]
    assert len(names) == 4


def test_naive_splitter_fails_on_corpus(all_frames: list[bytes]) -> None:
    """The corpus is discriminating: cutting at the first EOI breaks thumbnail/comment frames."""
    assert naive_split(b"".join(all_frames)) != all_frames


# -- exact recovery under every chunking -----------------------------------------------------


def test_whole_buffer(mixed: MixedStream) -> None:
    """The mixed stream fed at once yields exactly its frames and counters."""
    parser = JpegStreamParser()
    out = feed_all(parser, [mixed.data])
    assert_mixed_result(mixed, parser, out)


def test_one_byte_at_a_time(mixed: MixedStream) -> None:
    """The mixed stream fed one byte per call yields exactly its frames."""
    parser = JpegStreamParser()
    data = mixed.data
    out = feed_all(parser, (data[i : i + 1] for i in range(len(data))), check_each=False)
    assert_mixed_result(mixed, parser, out)


def test_every_two_chunk_split(small_mixed: MixedStream) -> None:
    """Every split point of a 2-chunk split yields the same frames and counters."""
    data = small_mixed.data
    assert 10_000 < len(data) < 20_000
    for cut in range(len(data) + 1):
        parser = JpegStreamParser()
        out = parser.feed(data[:cut]) + parser.feed(data[cut:])
        parser.close()
        assert out == small_mixed.frames, cut
        assert parser.garbage_bytes == small_mixed.garbage, cut
        assert parser.dropped_truncated == small_mixed.truncated, cut


@pytest.mark.parametrize("seed", range(12))
def test_random_chunk_sizes(mixed: MixedStream, seed: int) -> None:
    """Seeded random chunkings of the mixed stream yield exactly its frames."""
    rng = random.Random(seed)
    limit = rng.choice([8, 64, 1460, 5000, 70000])
    sizes = [rng.randint(1, limit) for _ in range(97)]
    parser = JpegStreamParser()
    out = feed_all(parser, split_by_sizes(mixed.data, sizes))
    assert_mixed_result(mixed, parser, out)


def test_memoryview_and_iter_frames(mixed: MixedStream) -> None:
    """memoryview chunks through iter_frames() give the same result."""
    view = memoryview(mixed.data)
    parser = JpegStreamParser()
    out = list(parser.iter_frames(view[i : i + 4096] for i in range(0, len(view), 4096)))
    assert_mixed_result(mixed, parser, out)


def test_exif_thumbnail_does_not_end_the_frame() -> None:
    """The thumbnail's EOI inside APP1 does not end (or produce) a frame."""
    frame = by_name("pillow-exif-thumbnail")
    thumbnail = exif_thumbnail_of(next(f for f in corpus() if f.name == "pillow-exif-thumbnail"))
    parser = JpegStreamParser()
    out = feed_all(parser, split_by_sizes(frame * 3, [17]))
    assert out == [frame] * 3
    assert thumbnail not in out


# -- truncation, invalid structure, oversize -------------------------------------------------


def test_truncated_at_each_scan_offset_then_frame() -> None:
    """A frame cut at any scan byte or header marker is dropped; the next one is found."""
    victim = by_name("turbo-420")
    follower = by_name("pillow-restart-blocks")
    for cut in range(2, len(victim)):
        if cut < scan_data_start(victim) and cut not in header_marker_offsets(victim):
            continue  # a cut inside a header payload may swallow the follower (see below)
        parser = JpegStreamParser()
        out = parser.feed(victim[:cut]) + parser.feed(follower)
        assert out == [follower], cut
        assert parser.dropped_truncated == 1 and parser.dropped_bytes == cut, cut


def test_cut_inside_header_segment_recovers_by_a_later_frame() -> None:
    """A frame cut inside a length-delimited segment can hide the next frame; later ones survive.

    The segment length of the cut frame skips into the next frame, whose bytes are then not
    seen as a frame start; parsing resyncs at the first invalid marker position.
    """
    victim = by_name("turbo-420")
    dqt = victim.index(b"\xff\xdb")
    second, third = by_name("turbo-gray"), by_name("turbo-444")
    parser = JpegStreamParser()
    out = feed_all(parser, [victim[: dqt + 10], second, b"garbage", third])
    assert out[-1] == third
    assert set(out) <= {second, third}
    assert parser.dropped_invalid + parser.dropped_truncated >= 1


def test_close_counts_partial_frame_and_trailing_garbage() -> None:
    """close() accounts for an unfinished frame and for held-back garbage bytes."""
    frame = by_name("turbo-420")
    parser = JpegStreamParser()
    assert parser.feed(frame[:1000]) == []
    assert parser.in_frame
    parser.close()
    assert parser.dropped_truncated == 1 and parser.dropped_bytes == 1000
    assert not parser.in_frame and parser.buffered_bytes == 0
    assert parser.feed(b"abc\xff\xd8") == []
    assert parser.buffered_bytes == 2  # a possible SOI prefix is kept, nothing more
    parser.close()
    assert parser.garbage_bytes == 5


@pytest.mark.parametrize(
    ("name", "corrupt"),
    [
        ("marker byte is not FF", lambda f: f[:20] + b"\x00" + f[21:]),
        ("segment length below 2", lambda f: f[:22] + b"\x00\x01" + f[24:]),
        ("FF00 outside a scan", lambda f: f[:20] + b"\xff\x00" + f[22:]),
        ("EOI before any scan", lambda f: f[:20] + EOI),
        ("restart marker outside a scan", lambda f: f[:20] + b"\xff\xd3" + f[22:]),
    ],
)
def test_invalid_structure_dropped_and_next_frame_found(
    name: str, corrupt: Callable[[bytes], bytes]
) -> None:
    """A structural error drops the frame once and the following frame is found."""
    good = by_name("turbo-420")
    assert good[20:22] == b"\xff\xdb"  # APP0 (JFIF) is 18 bytes, then DQT
    bad = corrupt(good)
    follower = by_name("turbo-gray")
    for sizes in ([len(bad) + len(follower)], [1], [7, 300]):
        parser = JpegStreamParser()
        out = feed_all(parser, split_by_sizes(bad + follower, sizes))
        assert out == [follower], name
        assert parser.dropped_invalid == 1, name
        assert parser.dropped_truncated == 0 and parser.dropped_oversize == 0, name


def test_oversize_frame_dropped_next_found() -> None:
    """Frames over the limit are dropped and counted under any chunking."""
    small, big = by_name("turbo-420"), by_name("ffmpeg-mjpeg-0")
    assert len(small) < 5000 < len(big)
    stream = small + big + b"junk" + small + big + small
    for sizes in ([len(stream)], [1], [100], [4096, 13]):
        parser = JpegStreamParser(max_frame_bytes=5000)
        out = feed_all(parser, split_by_sizes(stream, sizes))
        assert out == [small] * 3, sizes
        assert parser.dropped_oversize == 2, sizes
        assert parser.garbage_bytes == 4
        assert parser.dropped_bytes == 2 * len(big)


def test_oversize_frame_is_followed_to_its_end_not_resynced_inside() -> None:
    """While discarding an oversize frame, a thumbnail inside it must not become a frame."""
    tj = TurboJPEG()
    thumbnail = pillow_jpeg(noisy_image(24, 16, seed=9), quality=90)
    exif = build_exif_with_thumbnail(thumbnail, padding=3000)
    big = pillow_jpeg(noisy_image(64, 48, seed=8), quality=90, exif=exif)
    tiny = tj.encode(noisy_image(8, 8, seed=3, channels=1), 50, TJPF_GRAY, TJSAMP_GRAY)
    assert big.index(thumbnail) > 3000 and len(tiny) < 2000
    parser = JpegStreamParser(max_frame_bytes=2000)
    out = feed_all(parser, split_by_sizes(big + tiny, [256]))
    assert out == [tiny]
    assert parser.dropped_oversize == 1 and parser.dropped_truncated == 0


def test_oversize_warning_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """250 oversize drops log the warning 3 times (1st, 101st, 201st)."""
    frame = by_name("turbo-gray")
    parser = JpegStreamParser(max_frame_bytes=1000)
    with caplog.at_level(logging.WARNING, logger=jpeg_stream.__name__):
        assert parser.feed(frame * 250) == []
    assert parser.dropped_oversize == 250
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3


def test_buffer_bounded_while_seeking_garbage() -> None:
    """Outside a frame at most a 2-byte SOI prefix is buffered."""
    parser = JpegStreamParser(max_frame_bytes=1 << 20)
    rng = random.Random(3)
    for _ in range(50):
        chunk = random_garbage(rng, 1000, stray_ff=True)
        assert parser.feed(chunk) == []
        assert parser.buffered_bytes <= 2


def test_rejects_tiny_limit() -> None:
    """A limit below the smallest marker pair is refused."""
    with pytest.raises(ValueError):
        JpegStreamParser(max_frame_bytes=3)


# -- linear work -----------------------------------------------------------------------------


class _CountingPattern:
    """Wraps a compiled regex and records how many bytes each search may examine."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.spans: list[int] = []

    def search(self, buf: bytearray, pos: int) -> re.Match[bytes] | None:
        """Run the wrapped search and record the span it may examine."""
        m = self.pattern.search(buf, pos)
        self.spans.append((m.end() if m else len(buf)) - pos)
        return m


@pytest.fixture(scope="module")
def large_frame() -> bytes:
    """A ~130 KB baseline frame with hundreds of stuffed bytes."""
    tj = TurboJPEG()
    frame = tj.encode(noisy_image(400, 300, seed=12), 95, TJPF_RGB, TJSAMP_420)
    assert len(frame) > 100_000
    assert entropy_region(frame).count(b"\xff\x00") > 200
    return frame


def test_work_is_linear_with_one_byte_feeds(
    large_frame: bytes, all_frames: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 1-byte feeds each call does O(1) scanning: no rescans of the partial frame."""
    entropy = _CountingPattern(jpeg_stream._ENTROPY_MARKER)
    fill = _CountingPattern(jpeg_stream._NOT_FILL)
    monkeypatch.setattr(jpeg_stream, "_ENTROPY_MARKER", entropy)
    monkeypatch.setattr(jpeg_stream, "_NOT_FILL", fill)
    stream = large_frame + b"".join(all_frames)
    parser = JpegStreamParser()
    out = []
    previous = 0
    for i in range(len(stream)):
        out += parser.feed(stream[i : i + 1])
        # A quadratic parser would rescan the partial frame on each feed.
        assert parser.scanned_bytes - previous <= 6, i
        previous = parser.scanned_bytes
    assert out == [large_frame, *all_frames]
    assert parser.scanned_bytes <= 3 * len(stream)
    assert max(entropy.spans) <= 2 and max(fill.spans) <= 2
    assert sum(entropy.spans) + sum(fill.spans) <= 3 * len(stream)


def test_work_is_linear_with_large_chunks(
    large_frame: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TCP-sized chunks scanning is about one pass, with one search per chunk or marker."""
    entropy = _CountingPattern(jpeg_stream._ENTROPY_MARKER)
    monkeypatch.setattr(jpeg_stream, "_ENTROPY_MARKER", entropy)
    stream = large_frame * 4
    parser = JpegStreamParser()
    out = feed_all(parser, split_by_sizes(stream, [1460]))
    assert out == [large_frame] * 4
    assert parser.scanned_bytes <= len(stream) + 8 * (len(stream) // 1460 + 1) + 400
    # One search per chunk plus one per marker: stuffed bytes never cost a Python-level step.
    stuffed = entropy_region(large_frame).count(b"\xff\x00")
    assert len(entropy.spans) < len(stream) // 1460 + 100 < 4 * stuffed


# -- property-based fuzzing ------------------------------------------------------------------

MARKERISH = [
    b"\xff",
    b"\xd8",
    b"\xd9",
    b"\xda",
    b"\x00",
    b"\x01",
    b"\xd0",
    b"\xc4",
    b"\xe1",
    b"\xfe",
    b"\xff\xd8\xff",
    b"\x00\x02",
    b"\x00\x10",
]


def small_frames() -> list[bytes]:
    """Corpus frames under 6000 bytes, used by the fuzz tests."""
    return [f.data for f in corpus() if len(f.data) < 6000]


chunk_sizes = st.lists(st.integers(1, 2048), min_size=1, max_size=20)
fuzz_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@fuzz_settings
@given(
    pieces=st.lists(st.sampled_from(MARKERISH) | st.binary(max_size=12), max_size=400),
    sizes=chunk_sizes,
    limit=st.sampled_from([4, 64, 1024, DEFAULT_MAX_FRAME_BYTES]),
)
def test_fuzz_marker_soup_keeps_invariants(
    pieces: list[bytes], sizes: list[int], limit: int
) -> None:
    """Marker-heavy random input never raises and keeps the buffer and accounting invariants."""
    data = b"".join(pieces)
    parser = JpegStreamParser(max_frame_bytes=limit)
    feed_all(parser, split_by_sizes(data, sizes))
    parser.close()
    assert parser.buffered_bytes == 0
    assert not parser.in_frame


# A pad longer than any segment length (65535) followed by a valid frame: whatever state the
# garbage left the parser in, the pad either ends the partial frame at a non-marker, or is
# entropy data that the frame's SOI interrupts, so the frame is recovered exactly.
PAD = bytes(65536 + 16)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """Valid frames damaged by bit flips, deletions, insertions and truncation."""
    frames = small_frames()
    chosen = draw(st.lists(st.sampled_from(frames), min_size=1, max_size=3))
    data = bytearray(b"".join(chosen))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if not data:
            break
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(MARKERISH) | st.binary(min_size=1, max_size=8))
        else:
            del data[pos:]
    return bytes(data)


@fuzz_settings
@given(
    garbage=mutated_streams() | st.binary(max_size=3000),
    final=st.sampled_from(range(len(small_frames()))),
    sizes=chunk_sizes,
    limit_kind=st.sampled_from(["exact", "small", "default"]),
)
def test_fuzz_mutated_stream_then_pad_then_valid_frame(
    garbage: bytes, final: int, sizes: list[int], limit_kind: str
) -> None:
    """After any damaged input and a 64 KiB zero pad, a valid frame is recovered exactly."""
    frame = small_frames()[final]
    limit = {"exact": len(frame), "small": 6000, "default": DEFAULT_MAX_FRAME_BYTES}[limit_kind]
    parser = JpegStreamParser(max_frame_bytes=limit)
    chunks = [*split_by_sizes(garbage, sizes), PAD, *split_by_sizes(frame, sizes)]
    out = feed_all(parser, chunks, check_each=True)
    assert out and out[-1] == frame
    assert not parser.in_frame


@fuzz_settings
@given(
    picks=st.lists(st.integers(0, 100), min_size=1, max_size=5),
    garbage=st.lists(st.binary(max_size=64), min_size=6, max_size=6),
    sizes=chunk_sizes,
)
def test_fuzz_valid_frames_with_garbage_any_split(
    picks: list[int], garbage: list[bytes], sizes: list[int]
) -> None:
    """Valid frames with non-SOI garbage between them survive any chunking exactly."""
    frames = small_frames()
    chosen = [frames[p % len(frames)] for p in picks]
    gaps = [g if starts_frame_exactly_at_end(g) else b"" for g in garbage]
    data = b"".join(g + f for g, f in zip(gaps[: len(chosen)], chosen, strict=True)) + gaps[-1]
    parser = JpegStreamParser()
    out = feed_all(parser, split_by_sizes(data, sizes))
    parser.close()
    assert out == chosen
    assert parser.garbage_bytes == sum(len(g) for g in gaps[: len(chosen)]) + len(gaps[-1])
    assert parser.dropped_bytes == 0


def test_hypothesis_strategies_produce_real_frames() -> None:
    """The fuzz strategies draw from several real frames, progressive ones included."""
    frames = small_frames()
    assert len(frames) >= 6
    assert any(f.count(SOS) > 1 for f in frames)
    assert np.all([f.startswith(SOI_START) for f in frames])
