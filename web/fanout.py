"""One writer for every stream client, as µStreamer does it.

The per-client generator (FrameHub.stream) costs, per frame and client, an event
wake-up, a greenlet switch and a pass through Flask's and pywsgi's iterator and write
layers. Here, once a stream's response headers are out, the web server hands the
client's socket to the FanOut: when a new part is published, the pump writes it to
every client that is idle, without blocking; a client whose socket is full gets a
libev write watcher and is continued when it drains, then given whatever part is
newest at that moment. No per-client greenlet runs per frame, no part is copied, a
slow client holds one part (newest frame wins) and never delays the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from web.channel import Channel

log = logging.getLogger("web")

_WRITE = 2  # libev EV_WRITE


class FanClient:
    """One stream client's socket and the part being written to it."""

    __slots__ = ("sock", "channel", "advance", "watcher", "done", "view", "seq", "ts", "last",
                 "progress")

    def __init__(self, sock: Any, channel: Channel, watcher: Any, advance: bool) -> None:
        self.sock = sock  # the non-blocking stdlib socket under gevent's
        self.channel = channel
        self.advance = advance  # parts in advance-headers form (Chromium)
        self.watcher = watcher
        self.done = gevent.event.Event()
        self.view: memoryview | None = None
        self.seq = 0
        self.ts: float | None = None  # capture time of a fresh part, for the latency
        self.last = time.monotonic()
        self.progress = self.last  # when the socket last took bytes of an unfinished part


class FanOut:
    """Writes each channel's newest part to each of its clients when it can take it."""

    def __init__(self, channels: dict[str, Channel],
                 count_viewer: Callable[[str, int, str | None], None],
                 send_timeout: float = 20.0) -> None:
        self.channels = channels
        self.count_viewer = count_viewer  # (stream, +1/-1, client): the hub's viewer count
        self.send_timeout = send_timeout
        self.loop = gevent.get_hub().loop
        self.clients: dict[str, set[FanClient]] = {name: set() for name in channels}

    def serve(self, sock: Any, name: str, advance: bool = False,
              address: str | None = None) -> None:
        """Feed `sock` (a gevent socket, headers already sent) the stream `name` until
        the client (from `address`) goes; blocks the calling greenlet meanwhile."""
        ch = self.channels[name]
        raw = getattr(sock, "_sock", sock)
        client = FanClient(raw, ch, self.loop.io(raw.fileno(), _WRITE), advance)
        self.count_viewer(name, 1, address)
        self.clients[name].add(client)
        try:
            if ch.fresh():
                self._start(client, fresh=True)
            client.done.wait()
        finally:
            self.clients[name].discard(client)
            client.watcher.stop()
            client.watcher.close()
            self.count_viewer(name, -1, address)

    def publish(self, ch: Channel) -> None:
        """A new part on `ch`: start it on every idle client (busy ones pick it up when
        they finish the part they are writing)."""
        for client in self.clients[ch.name]:
            if client.view is None and not client.done.is_set():
                self._start(client, fresh=True)

    def keepalive(self, now: float, every: float) -> None:
        """Re-send the last part to clients idle for `every` seconds (a silent stream is
        dropped by browsers and proxies, and a gone client is noticed only on a write);
        drop a client that took no bytes for `send_timeout` (it stopped reading, and would
        hold a file descriptor and a part for as long as its connection stays open)."""
        for clients in self.clients.values():
            for client in clients:
                if client.view is not None and now - client.progress >= self.send_timeout:
                    log.info("stream client took nothing for %.0f s: dropped",
                             now - client.progress)
                    self._drop(client)
                elif (client.view is None and not client.done.is_set()
                        and client.channel.part is not None and now - client.last >= every):
                    self._start(client, fresh=False)

    def close_all(self) -> None:
        """Shutting down: release every client's greenlet so its connection closes now."""
        for clients in self.clients.values():
            for client in clients:
                self._drop(client)

    def _start(self, client: FanClient, fresh: bool) -> None:
        ch = client.channel
        client.view = memoryview(ch.advance_part() if client.advance else ch.part)
        client.seq = ch.seq
        client.ts = ch.meta.ts_capture if fresh else None
        client.progress = time.monotonic()
        self._write(client)

    def _write(self, client: FanClient) -> None:
        view = client.view
        left = len(view) if view is not None else 0
        try:
            while view:
                view = view[client.sock.send(view):]
        except BlockingIOError:
            if len(view) < left:
                client.progress = time.monotonic()
            client.view = view
            if not client.watcher.active:
                client.watcher.start(self._write, client)
            return
        except OSError as exc:
            log.debug("stream client gone: %s", exc)
            self._drop(client)
            return
        if client.watcher.active:
            client.watcher.stop()
        client.view = None
        client.last = time.monotonic()
        ch = client.channel
        ch.parts_sent += 1
        if client.ts is not None:
            ch.observe(time.time() - client.ts)
        if ch.seq != client.seq:  # a newer part was published while this one was written
            self._start(client, fresh=True)

    def _drop(self, client: FanClient) -> None:
        client.view = None
        if client.watcher.active:
            client.watcher.stop()
        client.done.set()
