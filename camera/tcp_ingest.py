"""Raw-TCP MJPEG ingest: listen for a pusher (a Raspberry Pi camera, ffmpeg) and serve it.

A background thread accepts one pusher at a time (a new connection replaces the old
one) and splits its byte stream into JPEGs with the marker-walking parser; only the
newest complete frame is kept, and the capture loop decodes just that one, so a burst
from the pusher never builds a backlog. Between pushers the listener stays open and
the streams show NO SIGNAL.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from camera.base import Frame, FrameSource, SourceConfigError, SourceWaiting
from media.jpeg import JpegCodec, pick_backend
from media.jpeg_stream import JpegStreamParser

log = logging.getLogger("capture.tcp")

RECV_BYTES = 256 * 1024
IDLE_S = 1.0  # a connected pusher silent this long shows NO SIGNAL
NO_PUSHER_S = 0.5  # with no pusher at all, NO SIGNAL after this long


class TcpIngestSource(FrameSource):
    """Frames pushed as concatenated JPEGs over a plain TCP connection."""

    kind = "tcp"
    self_paced = True

    def __init__(self, host: str, port: int, max_frame_bytes: int = 8 * 1024 * 1024) -> None:
        self.host, self.port, self.max_frame_bytes = host, port, max_frame_bytes
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._jpeg_ts = 0.0
        self._seq = 0
        self._taken = 0
        self._peer: str | None = None
        self._conn: socket.socket | None = None
        self._codec: JpegCodec | None = None
        self._n = 0
        self.received = 0
        self.skipped = 0
        self.corrupt = 0
        self.pushers = 0
        self._parser_stats: dict[str, int] = {}
        self.width = self.height = 0

    def open(self) -> None:
        """Bind the listening socket and start accepting pushers."""
        if self._listener is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._listener = socket.create_server((self.host, self.port), family=family,
                                                  backlog=4)
        except OSError as exc:
            raise SourceConfigError(
                f"cannot listen on tcp://{self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._listener.settimeout(0.5)
        self._codec = JpegCodec(pick_backend("auto"))
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-ingest",
                                        daemon=True)
        self._thread.start()
        log.info("listening for an MJPEG pusher on tcp://%s:%d", self.host, self.port)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            old = self._conn
            self._conn = conn
            if old is not None:
                log.info("a new pusher replaces %s", self._peer)
                old.close()
            self._peer = f"{addr[0]}:{addr[1]}"
            self.pushers += 1
            threading.Thread(target=self._read_pusher, args=(conn, self._peer),
                             name="tcp-pusher", daemon=True).start()

    def _read_pusher(self, conn: socket.socket, peer: str) -> None:
        log.info("pusher %s connected", peer)
        parser = JpegStreamParser(max_frame_bytes=self.max_frame_bytes)
        conn.settimeout(0.5)
        try:
            while not self._stop.is_set() and self._conn is conn:
                try:
                    data = conn.recv(RECV_BYTES)
                except TimeoutError:
                    continue
                if not data:
                    break
                frames = parser.feed(data)
                if frames:
                    now = time.time()
                    with self._cond:
                        self.received += len(frames)
                        self._jpeg, self._jpeg_ts = frames[-1], now
                        self._seq += 1
                        self._cond.notify_all()
                self._parser_stats = {
                    "frames": parser.frames, "garbage_bytes": parser.garbage_bytes,
                    "dropped_oversize": parser.dropped_oversize,
                    "dropped_truncated": parser.dropped_truncated,
                    "dropped_invalid": parser.dropped_invalid,
                }
        except OSError as exc:
            log.debug("pusher %s: %s", peer, exc)
        finally:
            conn.close()
            if self._conn is conn:
                self._conn = None
                log.info("pusher %s disconnected", peer)
                with self._cond:
                    self._cond.notify_all()

    def read(self, timeout: float) -> Frame | None:
        """Decode the newest pushed JPEG; SourceWaiting while nobody pushes."""
        assert self._codec is not None
        start = time.monotonic()
        with self._cond:
            while self._seq == self._taken:
                patience = NO_PUSHER_S if self._conn is None else IDLE_S
                left = start + min(timeout, patience) - time.monotonic()
                if left <= 0:
                    raise SourceWaiting(
                        f"waiting for a pusher on tcp://{self.host}:{self.port}"
                        if self._conn is None else f"pusher {self._peer} sends nothing")
                self._cond.wait(left)
            self.skipped += self._seq - self._taken - 1
            self._taken = self._seq
            jpeg, ts = self._jpeg, self._jpeg_ts
        assert jpeg is not None
        try:
            img = self._codec.decode(jpeg)
        except ValueError as exc:
            self.corrupt += 1
            log.debug("dropped a corrupt frame: %s", exc)
            return None
        self.height, self.width = img.shape[:2]
        self._n += 1
        return Frame(img, None, ts, self._n, 0.0)

    def close(self) -> None:
        """Stop accepting and drop the current pusher."""
        self._stop.set()
        for s in (self._conn, self._listener):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self._conn = self._listener = None
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "listen": f"tcp://{self.host}:{self.port}",
            "pusher": self._peer if self._conn is not None else None,
            "width": self.width or None, "height": self.height or None,
            "frames_received": self.received, "frames_skipped": self.skipped,
            "frames_corrupt": self.corrupt, "pushers": self.pushers,
            "parser": self._parser_stats,
        }
