"""The push sink: newest encoded frames of one stream, pushed to one listener.

`https://` and `http://` send one long POST with chunked transfer encoding whose body
is the MJPEG stream (multipart parts or bare concatenated JPEGs), which is what
`ffmpeg -listen 1 -i https://HOST:PORT` reads; `tcp://` writes bare JPEGs to a plain
socket, like a Raspberry Pi camera client (`--format h264`: push/h264.py). When the
destination is down, refuses,
resets or stalls, one line is logged and the push is retried every `retry` seconds;
capture and encoding go on meanwhile, so the first frame after a reconnect is fresh.
"""

from __future__ import annotations

import base64
import logging
import select
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from encoder.options import H264Options
from media.urls import parse_destination, redact
from pipeline.child import CannotStart, Child, drain
from pipeline.control import Control
from pipeline.shm import FrameRing, SlotMeta
from push.adapt import (
    TICK_S,
    Adapter,
    TokenBucket,
    bound_socket_queue,
    delivery_rate,
    jpeg_quality,
)

log = logging.getLogger("push")

BOUNDARY = "frame"
CONNECT_TIMEOUT_S = 5.0
STALL_TIMEOUT_S = 5.0
STATS_EVERY_S = 10.0
# Unsent bytes the kernel may hold: a new frame is written only once the previous one
# has (nearly) left, so a slow link drops frames at the source instead of queueing them.
NOTSENT_LOWAT = 16 * 1024
SEND_PIECE = 16 * 1024


class PushFailed(Exception):
    """The destination refused, reset, stalled or closed the push."""


@dataclass(frozen=True)
class PushOptions:
    """What app_https_client.py's command line says about the video push."""

    url: str
    stream: str = "combined"
    fmt: str = "mpjpeg"
    retry: float = 5.0
    max_retries: int | None = None
    ca_file: str | None = None
    insecure: bool = False
    adapt: bool = True
    max_bitrate: float | None = None  # bits/s
    max_quality: int = 80
    min_quality: int = 30
    min_width: int = 320
    h264: H264Options = field(default_factory=H264Options)  # --format h264: top rate, GOP


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


class Pusher:
    """Connect, push the newest frames, reconnect every `retry` seconds on failure.

    At most about one frame waits in the kernel (NOTSENT_LOWAT): the next frame is taken
    from the ring only when the socket can take it, so on a slow link frames are dropped
    at the source, never queued. With `adapt`, the link is measured continuously and the
    encoder is asked for a quality and width that fit it (push/adapt.py).
    """

    def __init__(self, opts: PushOptions, ring: FrameRing, control: Control, wake_r: object,
                 stop: threading.Event) -> None:
        self.opts, self.ring, self.control, self.wake_r, self.stop = (
            opts, ring, control, wake_r, stop)
        self.sent = 0
        self.attempts = 0
        self.adapter = Adapter(opts.max_quality, opts.min_quality, opts.min_width,
                               opts.max_bitrate) if opts.adapt else None
        self.bucket = (TokenBucket(opts.max_bitrate / 8.0, max(opts.max_bitrate / 8.0 * 0.25,
                                                              32 * 1024))
                       if opts.max_bitrate else None)
        self._q_field = f"push_quality_{opts.stream}"
        self._w_field = f"push_width_{opts.stream}"

    def _begin(self) -> None:
        """Announce the push as a consumer of its stream, from full size."""
        self.control[f"sink_{self.opts.stream}"] = 1
        self.control[self._q_field] = 0  # a restarted push starts from full size
        self.control[self._w_field] = 0

    def _end(self) -> None:
        self.control[self._q_field] = 0
        self.control[self._w_field] = 0

    def _connection(self) -> Connection:
        return Connection(self.opts, self._beat)

    def _connected(self) -> None:
        """The destination takes the stream: say so once, and end a failure streak."""
        log.info("connected to %s%s", redact(self.opts.url),
                 f" after {self.failures} failed attempt(s)" if self.failures else "")
        self.failures, self.down_since = 0, None

    def run(self) -> None:
        """Until stopped (or out of retries)."""
        self.failures = 0
        self.down_since: float | None = None
        self._begin()
        try:
            while not self.stop.is_set():
                conn = self._connection()
                try:
                    conn.open()
                    if not getattr(conn, "deferred", False):  # else: once it is established
                        self._connected()
                    self._stream(conn)
                    conn.finish()
                except PushFailed as exc:
                    self.failures += 1
                    if self.down_since is None:
                        self.down_since = time.monotonic()
                        log.warning("push to %s failed: %s; retrying every %g s",
                                    redact(self.opts.url), exc, self.opts.retry)
                    else:
                        log.debug("attempt %d failed: %s", self.failures, exc)
                    if (self.opts.max_retries is not None
                            and self.failures > self.opts.max_retries):
                        raise CannotStart(f"giving up on {redact(self.opts.url)} after "
                                          f"{self.failures} failed attempts: {exc}") from None
                    self.stop.wait(self.opts.retry)
                finally:
                    conn.close()
        finally:
            self._end()

    def _beat(self) -> None:
        self.control["hb_push"] = time.time()

    def _stream(self, conn: Connection) -> None:
        assert conn.sock is not None
        last = self.ring.counter()
        fd = self.wake_r.fileno()  # type: ignore[attr-defined]
        stats = _Stats(self.ring.counter())
        tick = _Tick(conn.sock)
        progress = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            self.control["hb_push"] = time.time()
            if now - tick.t0 >= TICK_S:
                self._adapt(tick.close(now))
            if now - stats.t0 >= STATS_EVERY_S:
                self._log_stats(stats, now)
            # 1. Room in the kernel for a frame? Otherwise the link is the limit: wait.
            t_wait = time.monotonic()
            if not conn.wait_writable(0.25):
                tick.busy += time.monotonic() - t_wait
                if time.monotonic() - progress > STALL_TIMEOUT_S:
                    raise PushFailed(f"stalled: no progress for {STALL_TIMEOUT_S:.0f} s")
                continue
            tick.busy += time.monotonic() - t_wait
            progress = time.monotonic()
            # 2. A frame newer than the last one sent?
            if self.ring.counter() == last:
                readable, _, _ = select.select([fd], [], [], 0.25)
                if readable:
                    drain(self.wake_r)  # type: ignore[arg-type]
                continue
            got = self.ring.read_latest()
            if got is None:
                continue
            meta, jpeg = got
            # 3. --max-bitrate: wait for the bucket, then take whatever frame is newest.
            if self.bucket is not None:
                delay = self.bucket.wait_for(len(jpeg))
                if delay > 0:
                    self.stop.wait(min(delay, 0.25))
                    continue
            last = meta.counter
            quality = jpeg_quality(jpeg)
            t_send = time.monotonic()
            n = conn.send(jpeg, meta, quality)
            done = time.monotonic()
            tick.busy += done - t_send
            tick.sent += n
            tick.sample()
            progress = done
            self.sent += 1
            stats.frame(meta, quality, n)
            if self.adapter is not None:
                self.adapter.observe_frame(meta.width, quality, len(jpeg))

    def _adapt(self, m: dict[str, float]) -> None:
        """Fold one tick into the link estimate and ask the encoder for the chosen level."""
        ad = self.adapter
        if ad is None:
            return
        ad.update_capacity(sent_rate=m["sent_rate"], busy=m["busy"], delivery=m["delivery"])
        src_fps = self.control[f"encode_fps_{self.opts.stream}"]
        lv = ad.choose(src_fps)
        if lv is None:
            return
        log.debug("tick: sent %.2f Mbit/s busy %.0f%% delivery %.2f Mbit/s -> link %.2f "
                  "Mbit/s, budget %.0f B, %dw q%d", m["sent_rate"] * 8e-6, m["busy"] * 100,
                  m["delivery"] * 8e-6, ad.capacity * 8e-6, ad.budget(src_fps), lv.width,
                  lv.quality)
        full = lv.width >= ad.native
        self.control[self._w_field] = 0 if full else lv.width
        self.control[self._q_field] = 0 if lv.quality >= self.opts.max_quality else lv.quality

    def _log_stats(self, st: _Stats, now: float) -> None:
        dt = now - st.t0
        produced = self.ring.counter() - st.counter0
        link = ""
        if self.adapter is not None and self.adapter.capacity:
            link = f", link ~{self.adapter.capacity * 8e-6:.2f} Mbit/s"
        log.info("pushed %d frames (%.1f fps, %.2f Mbit/s%s), last %s q%d, %d of %d encoded "
                 "frames skipped to keep latency low", self.sent, st.n / dt,
                 st.bytes * 8e-6 / dt, link, st.res, st.quality, max(produced - st.n, 0),
                 produced)
        st.reset(now, self.ring.counter())


class _Stats:
    """What the 10-second log line reports."""

    def __init__(self, counter: int) -> None:
        self.reset(time.monotonic(), counter)
        self.res, self.quality = "-", 0

    def reset(self, now: float, counter: int) -> None:
        self.t0, self.counter0, self.n, self.bytes = now, counter, 0, 0

    def frame(self, meta: SlotMeta, quality: int, nbytes: int) -> None:
        self.n += 1
        self.bytes += nbytes
        self.res, self.quality = f"{meta.width}x{meta.height}", quality


class _Tick:
    """One adaptation tick's measurements: bytes written, time blocked, delivery samples."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock
        self.t0 = time.monotonic()
        self.busy = 0.0
        self.sent = 0
        self.rates: list[float] = []

    def sample(self) -> None:
        """Keep the kernel's delivery-rate sample (after each frame)."""
        rate = delivery_rate(self.sock) if self.sock is not None else None
        if rate:
            self.rates.append(rate)

    def close(self, now: float) -> dict[str, float]:
        """This tick's figures (the median sample, robust to odd ones), and start anew."""
        dt = max(now - self.t0, 1e-3)
        out = {"sent_rate": self.sent / dt, "busy": min(self.busy / dt, 1.0),
               "delivery": statistics.median(self.rates) if self.rates else 0.0}
        self.t0, self.busy, self.sent, self.rates = now, 0.0, 0, []
        return out


def push_main(child: Child, opts: PushOptions) -> None:
    """The push child: the stream to one listener, retrying while it is down."""
    handles = child.handles
    if opts.fmt == "h264":
        from push.h264 import H264Pusher  # noqa: PLC0415

        ring = FrameRing.attach(handles.h264)
        H264Pusher(opts, ring, child.control, handles.h264_wake_r, child.stop).run()
        return
    ring = FrameRing.attach(handles.jpeg[opts.stream])
    Pusher(opts, ring, child.control, handles.jpeg_wake_r, child.stop).run()


@dataclass
class GpsOptions:
    """What the command line says about GPS: where fixes come from and go to."""

    spec: str
    url: str
    interval: float = 1.0
    ca_file: str | None = None
    insecure: bool = False


def gps_main(child: Child, gps: GpsOptions) -> None:
    """The GPS child: read fixes and POST them to the -g URL."""
    from push.gps import GpsPoster, parse_gps_spec  # noqa: PLC0415

    reader = parse_gps_spec(gps.spec)
    if reader is None:
        return
    verify: bool | str = False if gps.insecure else (gps.ca_file or True)
    poster = GpsPoster(gps.url, reader, interval=gps.interval, verify=verify)
    reader.start()
    poster.start()
    try:
        while not child.stop.wait(1.0):
            pass
    finally:
        poster.stop()
        reader.stop()
