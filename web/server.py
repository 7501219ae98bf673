"""The web process: gevent's WSGI server on the socket the supervisor bound.

The supervisor binds the listening socket and hands it to each web process it starts,
so a restarted web process serves the same port without a gap in which connections
are refused. gevent holds hundreds of long-lived streams in one process cheaply.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import signal
import socket
import ssl
from typing import Any

import gevent
import gevent.event
import gevent.pywsgi
import gevent.socket

from media.urls import redact_text
from pipeline.child import Child, Handles, arm_stop_deadline
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FrameRing
from web.app import FANOUT_KEY
from web.cameras import House, Rig, ServedCamera
from web.channel import ADVANCE_OPEN, OPEN
from web.depth_video import DepthVideoFeed
from web.hub import FrameHub
from web.limits import (
    CONTROL_SLOTS,
    PEER_KEY,
    REFUSAL,
    RESERVE_FDS,
    ConnectionGuard,
    open_fds,
    raise_nofile,
    refuse_request,
)
from web.options import WebOptions

log = logging.getLogger("web")

SPARE_FDS = 24
"""Descriptors a camera plugged in later takes in this process (14 measured: its rings,
its control block, its feed): kept out of the connection table's budget from the start."""


class StreamHandler(gevent.pywsgi.WSGIHandler):
    """gevent's handler, with endless multipart streams sent unchunked.

    A stream has no length, so HTTP/1.1 would wrap every part in chunked framing, and
    gevent builds each chunk by copying the part into a new bytearray: one copy of
    every frame per client. Sent close-delimited (as µStreamer and mjpg-streamer do),
    the same bytes object goes to every socket untouched.
    """

    def finalize_headers(self) -> None:
        super().finalize_headers()
        if not self.response_use_chunked or not self._is_stream():
            return
        self.response_use_chunked = False
        self.close_connection = True
        self.response_headers = [
            (k, v) for k, v in self.response_headers
            if _text(k).lower() not in ("transfer-encoding", "connection")
        ] + [(b"Connection", b"close")]

    def process_result(self) -> None:
        """A plain-HTTP stream goes to the hub's shared writer once its headers are out."""
        fan = self.environ.get(FANOUT_KEY)
        if (fan is None or self.server.ssl_enabled or self.command != "GET"
                or self.code != 200):
            if not self._is_stream():
                super().process_result()
                return
            # Parts go out through this greenlet's own blocking writes (TLS, ?fps=): a
            # client that has not taken a part within the send timeout is let go, as the
            # shared writer lets go of one that takes no bytes for that long.
            self.socket.settimeout(self.server.guard.limits.send_timeout)
            try:
                super().process_result()
            except OSError as exc:  # timed out (plain or TLS), or the client went
                log.debug("stream to %s ended: %s", self._client(), exc)
                self.close_connection = True
            return
        hub, name, advance = fan
        self.write(ADVANCE_OPEN if advance else OPEN)  # headers and the first boundary
        if self.response_use_chunked:
            raise RuntimeError("a multipart stream must be sent close-delimited")
        hub.serve(self.socket, name, advance, self._client())

    def _is_stream(self) -> bool:
        return any(_text(k).lower() == "content-type"
                   and _text(v).startswith("multipart/x-mixed-replace")
                   for k, v in self.response_headers or ())

    def read_requestline(self) -> str:
        """Kept-alive connections get a fresh deadline for their next request head (and
        forget the last request's environ, whose client a bad next head must not log)."""
        self.environ = None
        guard: ConnectionGuard = self.server.guard
        conn = guard.current()
        if conn is not None and conn.requests:
            guard.start_wait(conn, guard.limits.keepalive_timeout)
        return super().read_requestline()

    def read_request(self, raw_requestline: str) -> Any:
        """The head is complete once parsed: its deadline ends here."""
        guard: ConnectionGuard = self.server.guard
        try:
            return super().read_request(raw_requestline)
        finally:
            conn = guard.current()
            if conn is not None:
                guard.end_wait(conn)
                conn.requests += 1

    def get_environ(self) -> dict[str, Any]:
        """The request's environ, its client and scheme as a trusted proxy forwarded them."""
        env = super().get_environ()
        self.server.guard.proxies.apply(env)
        return env

    def handle_one_response(self) -> None:
        """A request a trusted proxy forwards counts against its client's cap while it
        lasts; over the cap it gets a 503 (the proxy's connection stays open)."""
        guard: ConnectionGuard = self.server.guard
        conn = guard.current()
        client = self._client()
        if conn is None or client == self.environ.get(PEER_KEY):
            super().handle_one_response()
            return
        if not guard.claim(conn, client):
            self.application = refuse_request
        try:
            super().handle_one_response()
        finally:
            guard.release(conn)

    def _client(self) -> str:
        """Who made the request: the client a trusted proxy named, else the peer."""
        env = getattr(self, "environ", None) or {}
        addr = self.client_address
        return env.get("REMOTE_ADDR") or (addr[0] if isinstance(addr, tuple) else str(addr))

    def format_request(self) -> str:
        """gevent's access line, with the client a trusted proxy named (and the proxy) and
        no credential of the request target (?token=...) in it."""
        env = getattr(self, "environ", None) or {}
        client, peer = self._client(), env.get(PEER_KEY)
        via = f" via {peer}" if peer and peer != client else ""
        status = _text(self.status or "000").split()[0]  # this request's, set every time
        delta = f"{self.time_finish - self.time_start:.6f}" if self.time_finish else "-"
        return (f'{client}{via} "{redact_text(self.requestline or "")}" {status} '
                f"{self.response_length or '-'} {delta}")

    def log_request(self) -> None:
        """Access lines at debug level only: stream clients come and go constantly."""
        log.debug("%s", self.format_request())


class GuardedServer(gevent.pywsgi.WSGIServer):
    """gevent's WSGI server with its connection table kept inside the open-files budget.

    Every connection gets a deadline for its request head (TLS handshake included) and
    for idle time between kept-alive requests; a full table closes the oldest silent
    connection, and an address over its cap gets a 503, all without a traceback.
    """

    max_accept = 16  # bounds how far one accept burst may run ahead of the evictions

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        self.guard = guard
        super().__init__(*args, **kwargs)

    def do_read(self) -> tuple[Any, Any] | None:
        """Accept one connection, making room or refusing cleanly when the table is full."""
        self.guard.make_room()
        try:
            fd, address = self.socket._accept()  # noqa: SLF001
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            self.guard._burst("accept", "accept failed (%s): pausing new connections "  # noqa: SLF001
                              "for 0.1 s", exc.strerror)
            self.stop_accepting()
            self._timer = self.loop.timer(0.1)
            self._timer.start(self._start_accepting_if_started)
            return None
        sock = gevent.socket.socket(self.socket.family, self.socket.type, 0, fileno=fd)
        ip = address[0] if isinstance(address, tuple) else str(address)
        if self.guard.admit(ip) is not None:
            _refuse(sock)
            return None
        return sock, address

    def init_socket(self) -> None:
        super().init_socket()
        inner = self._handle

        def guarded(sock: Any, address: Any) -> None:
            ip = address[0] if isinstance(address, tuple) else str(address)
            conn = self.guard.begin(ip, gevent.getcurrent())
            try:
                inner(sock, address)
            except gevent.Timeout as exc:
                if exc is not conn.timer:
                    raise
                if conn.ip:  # not closed to make room, so its deadline passed
                    self.guard.counts["timed_out"] += 1
                log.debug("closed %s: no complete request in time", ip)
            except (ssl.SSLError, OSError) as exc:  # failed TLS handshake, reset between requests
                log.debug("closed %s: %s", ip, exc)
            finally:
                _close(sock)
                self.guard.end(conn)

        self._handle = guarded

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        """TLS: the handshake runs under the head deadline already armed for this
        connection; the socket is closed by the caller."""
        ssl_socket = self.wrap_socket(client_socket, **self.ssl_args)
        try:
            return self.handle(ssl_socket, address)
        finally:
            _close(ssl_socket)


class RedactFilter(logging.Filter):
    """Keeps credentials out of every line the web process logs, whoever logs it (gevent
    quotes a malformed request line whole in its error log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a bad format: the handler reports it as it always has
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_logs() -> None:
    """Put the RedactFilter on every handler of the web process's logging."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())


def _refuse(sock: Any) -> None:
    """Answer 503 without waiting (best effort) and close."""
    try:
        sock._sock.send(REFUSAL)  # noqa: SLF001
    except OSError:
        pass
    _close(sock)


def _close(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def web_main(child: Child, opts: WebOptions, listener: socket.socket, backend: str,
             rig: Rig | None = None) -> None:
    """The web child: serve the page, streams and API on the socket the supervisor bound,
    for every camera of the `rig`, and for each spare slot once a camera takes it."""
    redact_logs()
    rig = rig or Rig((("camera", child.cfg, child.handles),))
    cameras, spares = rig.cameras, rig.spares
    limits = opts.limits
    nofile = raise_nofile()
    # The rings and control blocks hold descriptors: counted before the connection table
    # gets what is left, with room kept for what a camera plugged in later attaches.
    served = [_camera(child, i, cam, limits.send_timeout) for i, cam in enumerate(cameras)]
    waiting = [(Control.attach(h.control), cfg, h) for cfg, h in spares]
    budget = nofile - open_fds() - RESERVE_FDS - SPARE_FDS * len(spares)
    guard = ConnectionGuard(limits, budget)
    if opts.max_clients > guard.budget - CONTROL_SLOTS:
        log.warning("--max-clients %d is more than the open-files limit (%d) allows: "
                    "using %d", opts.max_clients, nofile, guard.budget - CONTROL_SLOTS)
        opts = dataclasses.replace(opts, max_clients=max(1, guard.budget - CONTROL_SLOTS))
    log.info("open files: limit %d, %d connections at most, %d stream clients at most",
             nofile, guard.budget, opts.max_clients)
    house = House(served, backend, opts, guard.stats)
    for control, cfg, handles in waiting:
        house.expect(control, lambda name, c=cfg, h=handles: _camera(
            child, len(house.cameras), (name, c, h), limits.send_timeout))
    app = house.wsgi()
    sock = gevent.socket.socket(listener.family, listener.type, 0, fileno=listener.detach())
    server = GuardedServer(
        sock, app, log=None, error_log=logging.getLogger("web.wsgi"),
        handler_class=StreamHandler, guard=guard, **opts.ssl_args,
    )

    # A signal only asks: the server's start yields (it looks up its own name), and
    # closing it half started would leave it without its handler.
    stopping = gevent.event.Event()

    def request_stop() -> None:
        arm_stop_deadline()
        stopping.set()

    gevent.signal_handler(signal.SIGTERM, request_stop)
    gevent.signal_handler(signal.SIGINT, request_stop)
    for cam in served:
        house.start(cam)
    watch = gevent.spawn(house.watch) if spares else None
    server.start()
    log.info("serving on %s", _addr(sock))
    stopping.wait()
    child.stop.set()
    if watch is not None:
        watch.kill(block=False)
    server.close()
    for cam in house.cameras:
        cam.hub.stop()
        if cam.feed is not None:
            cam.feed.stop()
    server.stop(timeout=1.0)


def _camera(child: Child, index: int, camera: tuple[str, Config, Handles],
            send_timeout: float) -> ServedCamera:
    """One camera's hub and depth-video feed, on its own rings and control block."""
    name, cfg, handles = camera
    control = child.control if index == 0 else Control.attach(handles.control)
    rings = {s: FrameRing.attach(n) for s, n in handles.jpeg.items()}
    hub = FrameHub(control, rings, handles.jpeg_wake_r, cfg.stream_headers,
                   send_timeout=send_timeout, beat=child.beat if index == 0 else None)
    feed = (DepthVideoFeed(cfg, FrameRing.attach(handles.depth_video),
                           handles.depth_video_wake_r, control)
            if handles.depth_video else None)
    return ServedCamera(name, cfg, control, hub, feed, FrameRing.attach(handles.raw),
                        FrameRing.attach(handles.imu) if handles.imu else None)


def _addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
