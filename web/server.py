"""The web process: gevent's WSGI server on the socket the supervisor bound.

The supervisor binds the listening socket and hands it to each web process it starts,
so a restarted web process serves the same port without a gap in which connections
are refused. gevent holds hundreds of long-lived streams in one process cheaply.
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

import gevent
import gevent.pywsgi
import gevent.socket

from pipeline.child import Handles, run_child
from pipeline.config import Config
from pipeline.control import STREAMS, Control
from pipeline.shm import FrameRing
from web.app import create_app, web_options
from web.hub import FrameHub

log = logging.getLogger("web")


class StreamHandler(gevent.pywsgi.WSGIHandler):
    """gevent's handler, with endless multipart streams sent unchunked.

    A stream has no length, so HTTP/1.1 would wrap every part in chunked framing, and
    gevent builds each chunk by copying the part into a new bytearray: one copy of
    every frame per client. Sent close-delimited (as µStreamer and mjpg-streamer do),
    the same bytes object goes to every socket untouched.
    """

    def finalize_headers(self) -> None:
        super().finalize_headers()
        if not self.response_use_chunked:
            return
        for name, value in self.response_headers:
            if name.lower() in ("content-type", b"content-type") and (
                    _text(value).startswith("multipart/x-mixed-replace")):
                self.response_use_chunked = False
                self.close_connection = True
                self.response_headers = [
                    (k, v) for k, v in self.response_headers
                    if _text(k).lower() not in ("transfer-encoding", "connection")
                ] + [(b"Connection", b"close")]
                return

    def log_request(self) -> None:
        """Access lines at debug level only: stream clients come and go constantly."""
        log.debug("%s", self.format_request())


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def web_main(cfg: Config, handles: Handles, backend: str, listener: socket.socket,
             ssl_args: dict[str, Any] | None = None) -> None:
    """Entry point of the web process (spawned by the supervisor)."""

    def body() -> None:
        control = Control.attach(handles.control)
        rings = {s: FrameRing.attach(n) for s, n in handles.jpeg.items()}
        hub = FrameHub(control, rings, handles.jpeg_wake_r, cfg.stream_headers)
        app = create_app(cfg, hub, control, backend, web_options(cfg),
                         raw=FrameRing.attach(handles.raw))
        sock = gevent.socket.socket(listener.family, listener.type, 0,
                                    fileno=listener.detach())
        server = gevent.pywsgi.WSGIServer(
            sock, app, log=None, error_log=logging.getLogger("web.wsgi"),
            handler_class=StreamHandler, **(ssl_args or {}),
        )

        def stop() -> None:
            server.close()
            hub.stop()
            gevent.spawn(server.stop, timeout=1.0)

        gevent.signal_handler(signal.SIGTERM, stop)
        gevent.signal_handler(signal.SIGINT, stop)
        for s in STREAMS:
            control[f"viewers_{s}"] = 0
        hub.start()
        log.info("serving on %s", _addr(sock))
        server.serve_forever()

    run_child("web", cfg.log_level, handles.parent_pid, body)


def _addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
