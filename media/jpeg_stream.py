"""Incremental, marker-correct splitter for a byte stream of concatenated JPEG images.

Used by the raw-TCP MJPEG ingest: a sender pushes JPEGs back to back over a socket and this
sans-io parser cuts the stream into frames, walking the JPEG marker structure so that embedded
thumbnails, stuffed bytes and restart markers never end a frame early.

Recovery: garbage between frames is skipped up to the next FFD8 FF; a frame interrupted by a new
SOI (where a marker is expected, or inside scan data) is dropped and parsing restarts there; a
frame with a structural error is dropped and the search for FFD8 FF resumes at the error.
Limitation: a frame cut off inside a length-delimited segment (a header such as DQT or APP1)
can hide the frame after it, because the segment length skips into that frame unseen.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024

# A frame starts with SOI (FFD8) immediately followed by the prefix of the next marker.
_SOI_START = b"\xff\xd8\xff"
# In entropy-coded data FF00 is a stuffed zero and FFD0-FFD7 are restart markers; any other
# FFxx is a marker (or fill byte FF) that ends the scan.
_ENTROPY_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")
# Skips the fill bytes (FF FF ...) that may precede a marker code.
_NOT_FILL = re.compile(rb"[^\xff]")

_SOI = 0xD8
_EOI = 0xD9
_SOS = 0xDA
_TEM = 0x01
_RST0 = 0xD0
_RST7 = 0xD7

# Log the oversize warning for the 1st drop and then once per this many drops.
_OVERSIZE_LOG_EVERY = 100


class _State(enum.Enum):
    """Where the scanner is in the JPEG grammar."""

    SEEK_SOI = enum.auto()  # outside a frame, hunting for FFD8 FF
    MARKER = enum.auto()  # inside a frame, expecting FF (fill)* code at the scan position
    LENGTH = enum.auto()  # expecting the 2-byte big-endian segment length
    SKIP = enum.auto()  # skipping a segment payload up to self._need
    ENTROPY = enum.auto()  # inside entropy-coded scan data


class JpegStreamParser:
    """Split a stream of concatenated JPEGs into byte-exact frames, chunk by chunk, without I/O.

    Linear time (no byte is rescanned) and memory bounded by ``max_frame_bytes`` plus one chunk.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        """Create a parser that drops frames larger than ``max_frame_bytes``."""
        if max_frame_bytes < 4:
            raise ValueError("max_frame_bytes must be at least 4")
        self.max_frame_bytes = max_frame_bytes
        self.frames = 0
        self.garbage_bytes = 0
        self.dropped_oversize = 0
        self.dropped_truncated = 0
        self.dropped_invalid = 0
        # Bytes thrown away as part of dropped frames (garbage_bytes counts bytes between frames).
        self.dropped_bytes = 0
        # Bytes examined by searches plus bytes skipped as segment payload (linear-work witness).
        self.scanned_bytes = 0
        self._buf = bytearray()
        self._pos = 0
        self._state = _State.SEEK_SOI
        self._need = 0
        self._segment_is_sos = False
        self._in_scan = False
        self._seen_sos = False
        self._discarding = False

    @property
    def buffered_bytes(self) -> int:
        """Number of bytes currently held (the partial frame or a short marker prefix)."""
        return len(self._buf)

    @property
    def in_frame(self) -> bool:
        """True while a frame has been started but not yet finished or dropped."""
        return self._state is not _State.SEEK_SOI

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data`` and return the complete frames it finished, in stream order."""
        out: list[bytes] = []
        if not data:
            return out
        self._buf += data
        while self._step(out):
            pass
        self._bound_memory()
        return out

    def iter_frames(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Feed every chunk of ``chunks`` and yield the frames as they complete."""
        for chunk in chunks:
            yield from self.feed(chunk)

    def close(self) -> None:
        """Mark the end of the stream: an unfinished frame is counted as truncated and dropped."""
        if self.in_frame:
            if not self._discarding:
                self.dropped_truncated += 1
            self.dropped_bytes += len(self._buf)
        elif self._buf:
            self.garbage_bytes += len(self._buf)
        self._buf.clear()
        self._pos = 0
        self._state = _State.SEEK_SOI
        self._discarding = False

    # -- state machine -------------------------------------------------------------------------

    def _step(self, out: list[bytes]) -> bool:
        """Advance the state machine once; return False when more input is needed."""
        state = self._state
        if state is _State.ENTROPY:
            return self._scan_entropy()
        if state is _State.MARKER:
            return self._read_marker(out)
        if state is _State.SKIP:
            return self._skip_segment()
        if state is _State.LENGTH:
            return self._read_length()
        return self._seek_soi()

    def _seek_soi(self) -> bool:
        buf = self._buf
        start = self._pos
        i = buf.find(_SOI_START, start)
        if i < 0:
            n = len(buf)
            self.scanned_bytes += n - start
            # Keep only a tail that may be the beginning of FFD8FF.
            if buf.endswith(b"\xff\xd8"):
                keep = 2
            elif buf.endswith(b"\xff"):
                keep = 1
            else:
                keep = 0
            self.garbage_bytes += n - keep
            del buf[: n - keep]
            self._pos = 0
            return False
        self.scanned_bytes += i + len(_SOI_START) - start
        self.garbage_bytes += i
        del buf[:i]
        self._start_frame()
        return True

    def _start_frame(self) -> None:
        """Begin a frame whose SOI sits at the front of the buffer."""
        self._pos = 2
        self._state = _State.MARKER
        self._in_scan = False
        self._seen_sos = False
        self._discarding = False

    def _read_marker(self, out: list[bytes]) -> bool:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        if pos >= n:
            return False
        if buf[pos] != 0xFF:
            self._drop_invalid(pos)
            return True
        m = _NOT_FILL.search(buf, pos + 1)
        if m is None:
            self.scanned_bytes += n - pos
            self._pos = n - 1  # stay on the last fill byte until the marker code arrives
            return False
        code_pos = m.start()
        self.scanned_bytes += code_pos + 1 - pos
        code = buf[code_pos]
        end = code_pos + 1
        if code == _EOI:
            self._finish_frame(end, out)
        elif code == _SOI:
            self._restart_at(code_pos - 1)
        elif code == 0 or _RST0 <= code <= _RST7:
            if self._in_scan:
                # Stuffed zero or restart marker after fill bytes: still scan data.
                self._pos = end
                self._state = _State.ENTROPY
            else:
                self._drop_invalid(code_pos)
        elif code == _TEM:
            self._in_scan = False
            self._pos = end
        else:
            self._in_scan = False
            self._segment_is_sos = code == _SOS
            self._pos = end
            self._state = _State.LENGTH
        return True

    def _read_length(self) -> bool:
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 2:
            return False
        length = (buf[pos] << 8) | buf[pos + 1]
        if length < 2:
            self._drop_invalid(pos)
            return True
        self.scanned_bytes += 2
        self._pos = pos + 2
        self._need = pos + length
        self._state = _State.SKIP
        return True

    def _skip_segment(self) -> bool:
        n = len(self._buf)
        if n < self._need:
            self.scanned_bytes += n - self._pos
            self._pos = n
            return False
        self.scanned_bytes += self._need - self._pos
        self._pos = self._need
        if self._segment_is_sos:
            self._seen_sos = True
            self._in_scan = True
            self._state = _State.ENTROPY
        else:
            self._state = _State.MARKER
        return True

    def _scan_entropy(self) -> bool:
        buf = self._buf
        pos = self._pos
        m = _ENTROPY_MARKER.search(buf, pos)
        if m is None:
            n = len(buf)
            self.scanned_bytes += n - pos
            # A trailing FF may start a marker whose code byte has not arrived yet.
            self._pos = n - 1 if n > pos and buf[n - 1] == 0xFF else n
            return False
        p = m.start()
        self.scanned_bytes += p + 2 - pos
        self._pos = p
        self._state = _State.MARKER
        return True

    # -- frame outcomes ------------------------------------------------------------------------

    def _finish_frame(self, end: int, out: list[bytes]) -> None:
        """EOI seen: emit buf[:end] as a frame unless it is being discarded or is not valid."""
        buf = self._buf
        if self._discarding or not self._seen_sos or end > self.max_frame_bytes:
            if not self._discarding:
                if self._seen_sos:
                    self._count_oversize(end)
                else:
                    self.dropped_invalid += 1
                    logger.debug("dropped %d-byte JPEG without a scan", end)
            self.dropped_bytes += end
        else:
            out.append(bytes(buf[:end]))
            self.frames += 1
        del buf[:end]
        self._pos = 0
        self._discarding = False
        self._state = _State.SEEK_SOI

    def _restart_at(self, soi_pos: int) -> None:
        """An SOI interrupted the current frame: drop it and start a new frame at ``soi_pos``."""
        if not self._discarding:
            self.dropped_truncated += 1
            logger.debug("dropped truncated %d-byte JPEG (new SOI inside it)", soi_pos)
        self.dropped_bytes += soi_pos
        del self._buf[:soi_pos]
        self._start_frame()

    def _drop_invalid(self, resume: int) -> None:
        """Structure error at ``resume``: drop the frame and hunt for an SOI from there on."""
        if not self._discarding:
            self.dropped_invalid += 1
            logger.debug("dropped JPEG with invalid structure at offset %d", resume)
        self.dropped_bytes += resume
        del self._buf[:resume]
        self._pos = 0
        self._discarding = False
        self._state = _State.SEEK_SOI

    def _count_oversize(self, size: int) -> None:
        self.dropped_oversize += 1
        if self.dropped_oversize % _OVERSIZE_LOG_EVERY == 1:
            logger.warning(
                "dropped JPEG frame of at least %d bytes (limit %d); %d oversize drops so far",
                size,
                self.max_frame_bytes,
                self.dropped_oversize,
            )

    def _bound_memory(self) -> None:
        """Between feeds, keep at most ``max_frame_bytes`` of a partial frame.

        A partial frame over the limit is dropped, but its structure is still followed (without
        buffering) to its EOI so that nothing inside it, such as a thumbnail, is taken for a frame.
        """
        if self._state is _State.SEEK_SOI:
            return
        if not self._discarding:
            if len(self._buf) <= self.max_frame_bytes:
                return
            self._count_oversize(len(self._buf))
            self._discarding = True
        trim = self._pos
        if trim:
            self.dropped_bytes += trim
            del self._buf[:trim]
            self._pos = 0
            self._need -= trim
