"""The push sink: newest encoded frames of one stream, pushed to one listener.

`https://` and `http://` send one long POST with chunked transfer encoding whose body
is the MJPEG stream (multipart parts or bare concatenated JPEGs), which is what
`ffmpeg -listen 1 -i https://HOST:PORT` reads; `tcp://` writes bare JPEGs to a plain
socket, like a Raspberry Pi camera client. When the destination is down, refuses,
resets or stalls, one line is logged and the push is retried every `retry` seconds;
capture and encoding go on meanwhile, so the first frame after a reconnect is fresh.
"""

from __future__ import annotations

import base64
import logging
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pipeline.child import CannotStart, Handles, drain, install_stop_handlers, run_child
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FrameRing, SlotMeta
from push.urls import parse_destination, redact

log = logging.getLogger("push")

BOUNDARY = "frame"
CONNECT_TIMEOUT_S = 5.0
STALL_TIMEOUT_S = 5.0
STATS_EVERY_S = 10.0


class PushFailed(Exception):
    """The destination refused, reset, stalled or closed the push."""


@dataclass
class PushOptions:
    """What app_https_client.py's command line says about the video push."""

    url: str
    stream: str = "combined"
    fmt: str = "mpjpeg"
    retry: float = 5.0
    max_retries: int | None = None
    ca_file: str | None = None
    insecure: bool = False


def ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """Verifying context (system CAs or --ca-file), or a non-verifying one for --insecure."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Connection:
    """One push connection; `send` writes one frame or raises PushFailed."""

    def __init__(self, opts: PushOptions) -> None:
        self.opts = opts
        scheme, self.host, self.port, self.path = parse_destination(
            opts.url, ("https", "http", "tcp"))
        self.scheme = scheme
        self.fmt = "mjpeg" if scheme == "tcp" else opts.fmt
        self.sock: socket.socket | None = None
        self.chunked = scheme in ("https", "http")

    def open(self) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise PushFailed(f"cannot connect: {exc.strerror or exc}") from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        ctype = (f"multipart/x-mixed-replace; boundary={BOUNDARY}"
                 if self.opts.fmt == "mpjpeg" else "image/jpeg")
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
        assert self.sock is not None
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise PushFailed(f"stalled: no progress for {STALL_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise PushFailed(f"connection lost: {exc.strerror or exc}") from None

    def send(self, jpeg: bytes, meta: SlotMeta) -> None:
        """Write one frame in the configured format."""
        if self.fmt == "mpjpeg":
            body = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                    f"\r\nX-Timestamp: {meta.ts_capture:.6f}\r\n\r\n").encode() + jpeg + b"\r\n"
        else:
            body = jpeg
        if self.chunked:
            body = b"%x\r\n" % len(body) + body + b"\r\n"
        self._check_closed()
        self._send(body)

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


class Pusher:
    """Connect, push the newest frames, reconnect every `retry` seconds on failure."""

    def __init__(self, opts: PushOptions, ring: FrameRing, control: Control, wake_r: object,
                 stop: threading.Event) -> None:
        self.opts, self.ring, self.control, self.wake_r, self.stop = (
            opts, ring, control, wake_r, stop)
        self.sent = 0
        self.attempts = 0

    def run(self) -> None:
        """Until stopped (or out of retries)."""
        failures = 0
        down_since: float | None = None
        self.control[f"sink_{self.opts.stream}"] = 1
        while not self.stop.is_set():
            conn = Connection(self.opts)
            try:
                conn.open()
                log.info("connected to %s%s", redact(self.opts.url),
                         f" after {failures} failed attempt(s)" if failures else "")
                failures, down_since = 0, None
                self._stream(conn)
                conn.finish()
            except PushFailed as exc:
                failures += 1
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("push to %s failed: %s; retrying every %g s",
                                redact(self.opts.url), exc, self.opts.retry)
                else:
                    log.debug("attempt %d failed: %s", failures, exc)
                if self.opts.max_retries is not None and failures > self.opts.max_retries:
                    raise CannotStart(f"giving up on {redact(self.opts.url)} after "
                                      f"{failures} failed attempts: {exc}") from None
                self.stop.wait(self.opts.retry)
            finally:
                conn.close()

    def _stream(self, conn: Connection) -> None:
        last = self.ring.counter()
        t_stats, n_stats = time.monotonic(), 0
        fd = self.wake_r.fileno()  # type: ignore[attr-defined]
        while not self.stop.is_set():
            self.control["hb_push"] = time.time()
            readable, _, _ = select.select([fd], [], [], 0.5)
            if readable:
                drain(self.wake_r)  # type: ignore[arg-type]
            if self.ring.counter() == last:
                continue
            got = self.ring.read_latest()
            if got is None:
                continue
            meta, jpeg = got
            last = meta.counter
            conn.send(jpeg, meta)
            self.sent += 1
            n_stats += 1
            now = time.monotonic()
            if now - t_stats >= STATS_EVERY_S:
                log.info("pushed %d frames (%.1f fps) to %s", self.sent,
                         n_stats / (now - t_stats), redact(self.opts.url))
                t_stats, n_stats = now, 0


def push_main(cfg: Config, handles: Handles, opts: PushOptions) -> None:
    """Entry point of the push process (spawned by the supervisor)."""

    def body() -> None:
        stop = threading.Event()
        install_stop_handlers(stop)
        control = Control.attach(handles.control)
        ring = FrameRing.attach(handles.jpeg[opts.stream])
        Pusher(opts, ring, control, handles.jpeg_wake_r, stop).run()

    run_child("push", cfg.log_level, handles.parent_pid, body)


@dataclass
class GpsOptions:
    """What the command line says about GPS: where fixes come from and go to."""

    spec: str
    url: str
    interval: float = 1.0
    ca_file: str | None = None
    insecure: bool = False


def gps_main(cfg: Config, handles: Handles, gps: GpsOptions) -> None:
    """Entry point of the GPS process: read fixes and POST them to the -g URL."""

    def body() -> None:
        from push.gps import GpsPoster, parse_gps_spec  # noqa: PLC0415

        stop = threading.Event()
        install_stop_handlers(stop)
        reader = parse_gps_spec(gps.spec)
        if reader is None:
            return
        verify: bool | str = False if gps.insecure else (gps.ca_file or True)
        poster = GpsPoster(gps.url, reader, interval=gps.interval, verify=verify)
        reader.start()
        poster.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            poster.stop()
            reader.stop()

    run_child("gps", cfg.log_level, handles.parent_pid, body)
