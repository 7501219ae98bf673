"""Recording of encoded JPEG frames into .mkv or .avi without re-encoding, and snapshots.

`JpegRecorder` hands each JPEG with its capture timestamp to an `ffmpeg` child that
stream-copies (`-c:v copy`) them into the container. The frames travel to ffmpeg as a
minimal Matroska stream written here, so every frame carries its own timestamp (in
milliseconds from the first frame). ffmpeg's wall clock on a raw MJPEG pipe
(`-use_wallclock_as_timestamps 1`) would instead stamp frames when they reach ffmpeg, so
queueing delays and stalls would show up in the timing.

* .mkv keeps those timestamps as they are (variable frame rate, exact timing);
* .avi is a constant-frame-rate container: the output runs at `fps_hint`, a late frame
  is preceded by empty chunks (players repeat the previous picture) and frames arriving
  faster than `fps_hint` are pushed one tick later, so set `fps_hint` to at least the
  real frame rate. Every JPEG is kept in both cases.

ffmpeg runs in its own session, so a Ctrl-C on the terminal reaches only this process,
whose `close()` (or the end of its stdin when this process dies) lets ffmpeg write the
index and trailer: the file is complete on every exit path short of ffmpeg itself being
killed. `write` never blocks: frames go through a bounded deque to a writer thread and
are dropped (and counted) when ffmpeg falls behind. The container's picture size is that
of the first frame; later frames of another size are dropped and counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections import deque
from types import TracebackType
from typing import BinaryIO

log = logging.getLogger(__name__)

FORMATS = {".mkv": "matroska", ".avi": "avi"}
QUEUE_FRAMES = 64
CLOSE_TIMEOUT_S = 10.0

_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF header; ValueError if it has none."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    i, n = 2, len(jpeg)
    while i + 4 <= n:
        if jpeg[i] != 0xFF:
            raise ValueError("corrupt JPEG header")
        marker = jpeg[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack_from(">H", jpeg, i + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            height, width = struct.unpack_from(">HH", jpeg, i + 5)
            return width, height
        if marker == 0xDA:
            break
        i += 2 + length
    raise ValueError("JPEG has no frame header (SOF)")


def _vint_size(n: int) -> bytes:
    """EBML variable-length size field."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError("EBML element too large")


def _el(ident: int, payload: bytes) -> bytes:
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + _vint_size(len(payload)) + payload


def _uint(ident: int, value: int) -> bytes:
    return _el(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _mkv_header(width: int, height: int) -> bytes:
    """EBML header, an open-ended Segment, Info (1 ms ticks) and one V_MJPEG track."""
    ebml = _el(0x1A45DFA3, b"".join((
        _uint(0x4286, 1), _uint(0x42F7, 1), _uint(0x42F2, 4), _uint(0x42F3, 8),
        _el(0x4282, b"matroska"), _uint(0x4287, 4), _uint(0x4285, 2),
    )))
    info = _el(0x1549A966, _uint(0x2AD7B1, 1_000_000) + _el(0x4D80, b"camera-recorder")
               + _el(0x5741, b"camera-recorder"))
    video = _el(0xE0, _uint(0xB0, width) + _uint(0xBA, height))
    track = _el(0xAE, b"".join((
        _uint(0xD7, 1), _uint(0x73C5, 1), _uint(0x83, 1), _uint(0x9C, 0),
        _el(0x86, b"V_MJPEG"), video,
    )))
    return ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + _el(0x1654AE6B, track)


def _mkv_frame(jpeg: bytes, ms: int) -> bytes:
    """One Cluster holding one key-frame SimpleBlock at `ms`."""
    block = b"\x81\x00\x00\x80" + jpeg
    return _el(0x1F43B675, _uint(0xE7, ms) + _el(0xA3, block))


def _write_all(f: BinaryIO, data: bytes) -> None:
    """Write every byte to an unbuffered file (a raw write may be partial)."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError("pipe write made no progress")
        view = view[n:]


class JpegRecorder:
    """Record JPEG frames with their timestamps into PATH.mkv or PATH.avi (no re-encoding).

    Usable as a context manager; `close()` is idempotent and always finalizes the file.
    """

    @staticmethod
    def check_path(path: str) -> str:
        """Validate the path and find ffmpeg (ValueError / RuntimeError); returns ffmpeg."""
        ext = os.path.splitext(path)[1].lower()
        if ext not in FORMATS:
            raise ValueError(f"recording {path!r}: the file must end in .mkv or .avi")
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("recording needs ffmpeg, which is not installed (not on PATH)")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"recording {path!r}: directory {directory!r} does not exist")
        try:
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            raise ValueError(f"recording {path!r}: directory {directory!r} is not writable "
                             f"({exc.strerror})") from None
        return ffmpeg

    def __init__(self, path: str, fps_hint: float = 30.0) -> None:
        if not fps_hint > 0:
            raise ValueError(f"fps_hint must be positive, got {fps_hint}")
        ffmpeg = self.check_path(path)
        ext = os.path.splitext(path)[1].lower()
        self.path = path
        self.fps_hint = fps_hint
        self.frames_written = 0
        # Drops counted apart by the caller's thread and the writer, so neither takes a
        # lock: a Ctrl-C landing while `write` held one would leave it held for `close`.
        self._dropped_here = 0
        self._dropped_writer = 0
        # Frames go through a deque (append and popleft are atomic) and a wake-up pipe,
        # not a queue.Queue, whose lock a KeyboardInterrupt in `write` could leave taken.
        self._frames: deque[tuple[bytes, float] | None] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._close_lock = threading.Lock()
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._last_ms = -1
        self._stderr_tail: deque[str] = deque(maxlen=20)
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0", "-c:v", "copy"]
        if ext == ".avi":
            cmd += ["-r", f"{fps_hint:g}"]
        cmd += ["-f", FORMATS[ext], path]
        self._proc = subprocess.Popen(  # noqa: S603  (fixed argument list)
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            bufsize=0, start_new_session=True,
        )
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True,
                                               name="recorder-stderr")
        self._stderr_thread.start()
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name="recorder-writer")
        self._writer.start()
        log.info("recording to %s", path)

    @property
    def returncode(self) -> int | None:
        """ffmpeg's exit status once closed (0: file finalized), None while recording."""
        return self._proc.returncode

    @property
    def frames_dropped(self) -> int:
        """Frames not recorded: queue full, unreadable, another size, or ffmpeg gone."""
        return self._dropped_here + self._dropped_writer

    def write(self, jpeg: bytes, timestamp: float) -> bool:
        """Queue one JPEG captured at `timestamp` (seconds); False if it was dropped."""
        if self._closed:
            return False
        if len(self._frames) >= QUEUE_FRAMES:
            self._dropped_here += 1
            dropped = self.frames_dropped
            if dropped in (1, 10, 100) or dropped % 1000 == 0:
                log.warning("recorder %s falling behind: %d frames dropped", self.path, dropped)
            return False
        self._frames.append((jpeg, timestamp))
        self._wake()
        return True

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\x01")

    def _drop(self) -> None:
        self._dropped_writer += 1

    def _packet(self, jpeg: bytes, timestamp: float) -> bytes | None:
        """The bytes to send ffmpeg for this frame (with the header before the first)."""
        try:
            size = jpeg_size(jpeg)
        except ValueError as exc:
            log.warning("recorder: frame dropped: %s", exc)
            return None
        head = b""
        if self._size is None:
            self._size, self._t0 = size, timestamp
            head = _mkv_header(*size)
        elif size != self._size:
            log.warning("recorder: %dx%d frame dropped (recording is %dx%d)", *size, *self._size)
            return None
        assert self._t0 is not None
        ms = max(int(round((timestamp - self._t0) * 1000)), self._last_ms + 1)
        self._last_ms = ms
        return head + _mkv_frame(jpeg, ms)

    def _write_loop(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        broken = False
        while True:
            if not self._frames:
                with contextlib.suppress(OSError):
                    if not os.read(self._wake_r, 4096):
                        break  # the wake-up pipe was closed: nothing more will come
                continue
            item = self._frames.popleft()
            if item is None:
                break
            if broken:
                self._drop()
                continue
            data = self._packet(*item)
            if data is None:
                self._drop()
                continue
            try:
                _write_all(stdin, data)
                self.frames_written += 1
            except (BrokenPipeError, OSError, ValueError) as exc:
                broken = True
                self._drop()
                log.error("recorder: ffmpeg stopped accepting frames (%s): %s", exc,
                          " | ".join(self._stderr_tail) or "no message")
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                log.debug("ffmpeg: %s", line)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush queued frames, let ffmpeg finalize the file (kill it after `timeout`)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        self._frames.append(None)
        self._wake()
        self._writer.join(max(0.0, deadline - time.monotonic()))
        if not self._writer.is_alive():
            self._dropped_here += sum(1 for item in self._frames if item is not None)
            self._frames.clear()
        if self._writer.is_alive() and self._proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()
        rc = self._wait(deadline, min(3.0, timeout))
        self._stderr_thread.join(1.0)
        with contextlib.suppress(OSError):
            os.close(self._wake_w)  # a writer still waiting for frames reads the end
        self._writer.join(1.0)
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
        if rc != 0:
            detail = " | ".join(self._stderr_tail) or "no message"
            if self.frames_written == 0:
                log.warning("recording %s: no frames were recorded (%s)", self.path, detail)
                with contextlib.suppress(OSError):
                    if os.path.getsize(self.path) == 0:
                        os.unlink(self.path)
            else:
                log.error("recording %s: ffmpeg exited with %s: %s", self.path, rc, detail)
            return
        log.info("recording %s closed: %d frames written, %d dropped", self.path,
                 self.frames_written, self.frames_dropped)

    def _wait(self, deadline: float, grace: float) -> int | None:
        """ffmpeg's exit status; on overrun ask it to stop (SIGINT), after `grace` kill it."""
        proc = self._proc
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(max(0.1, deadline - time.monotonic()))
        log.warning("recording %s: ffmpeg did not finish in time; interrupting it", self.path)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return proc.wait()

    def __enter__(self) -> JpegRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def save_snapshot(path: str, jpeg: bytes) -> None:
    """Write a JPEG to `path` atomically: a temporary file beside it, then a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(jpeg)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
