"""One push connection: TCP or TLS to the listener, the chunked POST, the stall rule.

`https://` and `http://` send one long POST with chunked transfer encoding whose body is
the stream; `tcp://` writes to a plain socket. Every failure (refused, reset, stalled,
closed) is a `PushFailed`, which the pusher (push/pusher.py) logs and retries.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
from collections.abc import Callable
from typing import Protocol
from urllib.parse import unquote, urlsplit

from media.urls import parse_destination
from pipeline.shm import SlotMeta
from push.adapt import bound_socket_queue
from push.options import PushOptions

BOUNDARY = "frame"
CONNECT_TIMEOUT_S = 5.0
STALL_TIMEOUT_S = 5.0
# Unsent bytes the kernel may hold: a new frame is written only once the previous one
# has (nearly) left, so a slow link drops frames at the source instead of queueing them.
NOTSENT_LOWAT = 16 * 1024
SEND_PIECE = 16 * 1024


class PushFailed(Exception):
    """The destination refused, reset, stalled or closed the push."""


class Output(Protocol):
    """Where a pusher writes: a `Connection`, or ffmpeg for a media server (push/h264.py)."""

    sock: socket.socket | None

    def open(self) -> None: ...
    def wait_writable(self, timeout: float) -> bool: ...
    def send_bytes(self, body: bytes) -> int: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


def ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """Verifying context (system CAs or --ca-file), or a non-verifying one for --insecure."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def with_comment(jpeg: bytes, meta: SlotMeta, quality: int) -> bytes:
    """The JPEG with a COM segment after SOI carrying the part headers.

    Bare `mjpeg`/`tcp://` pushes have no headers, and a listener that records with
    `-c copy` keeps the segment, so capture time, size and quality travel with the frame.
    """
    text = (f"X-Timestamp: {meta.ts_capture:.6f}; X-Resolution: {meta.width}x{meta.height}; "
            f"X-Quality: {quality}").encode()
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


class Connection:
    """One push connection; `send` writes one frame or raises PushFailed."""

    def __init__(self, opts: PushOptions, beat: Callable[[], None] | None = None) -> None:
        self.opts = opts
        self.beat = beat  # called as bytes go out, so a long frame on a slow link is not a hang
        scheme, self.host, self.port, self.path = parse_destination(
            opts.url, ("https", "http", "tcp"))
        self.scheme = scheme
        self.fmt = "mjpeg" if scheme == "tcp" and opts.fmt != "h264" else opts.fmt
        self.sock: socket.socket | None = None
        self.chunked = scheme in ("https", "http")

    def open(self) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise PushFailed(f"cannot connect: {exc.strerror or exc}") from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bound_socket_queue(raw, NOTSENT_LOWAT)
        sock: socket.socket = raw
        if self.scheme == "https":
            ctx = ssl_context(self.opts.ca_file, self.opts.insecure)
            try:
                sock = ctx.wrap_socket(raw, server_hostname=self.host)
            except ssl.SSLCertVerificationError as exc:
                raw.close()
                raise PushFailed(f"certificate not trusted: {exc.verify_message}") from None
            except (ssl.SSLError, OSError) as exc:
                raw.close()
                raise PushFailed(f"TLS handshake failed: {exc}") from None
        sock.settimeout(STALL_TIMEOUT_S)
        self.sock = sock
        if self.chunked:
            self._send(self._request_head())

    def _request_head(self) -> bytes:
        ctype = {"mpjpeg": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                 "h264": "video/mp2t"}.get(self.opts.fmt, "image/jpeg")
        host = f"[{self.host}]" if ":" in self.host else self.host
        lines = [
            f"POST {self.path} HTTP/1.1", f"Host: {host}:{self.port}",
            f"Content-Type: {ctype}", "Transfer-Encoding: chunked",
            "User-Agent: depth-mjpeg-push", "Connection: close",
        ]
        parts = urlsplit(self.opts.url)
        if parts.username is not None:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append(f"Authorization: Basic {base64.b64encode(cred.encode()).decode()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _send(self, data: bytes) -> None:
        """Write all of `data`; the stall rule is no progress at all for STALL_TIMEOUT_S.

        (`sendall`'s timeout would bound the whole frame, which on a thin link may
        rightly take longer than that.)
        """
        assert self.sock is not None
        view = memoryview(data)
        try:
            while view:
                # Pieces of one TLS record at most: an SSL write's timeout covers the
                # whole call, and the stall rule is about progress, not frame size.
                view = view[self.sock.send(view[:SEND_PIECE]):]
                if self.beat is not None:
                    self.beat()
        except TimeoutError:
            raise PushFailed(f"stalled: no progress for {STALL_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise PushFailed(f"connection lost: {exc.strerror or exc}") from None

    def send(self, jpeg: bytes, meta: SlotMeta, quality: int) -> int:
        """Write one frame in the configured format; returns the bytes written."""
        jpeg = with_comment(jpeg, meta, quality)
        if self.fmt == "mpjpeg":
            body = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                    f"\r\nX-Timestamp: {meta.ts_capture:.6f}\r\nX-Resolution: "
                    f"{meta.width}x{meta.height}\r\nX-Quality: {quality}\r\n\r\n"
                    ).encode() + jpeg + b"\r\n"
        else:
            body = jpeg
        return self.send_bytes(body)

    def send_bytes(self, body: bytes) -> int:
        """Write bytes of the stream (one chunk of the POST body); returns the bytes written."""
        if self.chunked:
            body = b"%x\r\n" % len(body) + body + b"\r\n"
        self._check_closed()
        self._send(body)
        return len(body)

    def wait_writable(self, timeout: float) -> bool:
        """True once the kernel has room for a new frame (its unsent bytes drained)."""
        assert self.sock is not None
        _, writable, _ = select.select([], [self.sock], [], timeout)
        return bool(writable)

    def _check_closed(self) -> None:
        """Notice a peer that hung up (EOF) before writing into the void."""
        assert self.sock is not None
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError as exc:
            raise PushFailed(f"connection lost: {exc.strerror or exc}") from None
        if not data:
            raise PushFailed("the listener closed the connection")

    def finish(self) -> None:
        """End the chunked body properly so the listener sees a clean end of stream."""
        if self.sock is not None and self.chunked:
            try:
                self.sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
