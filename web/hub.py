"""FrameHub: the observer that fans each encoded frame out to every client.

One pump greenlet waits on the encoder's wake-up pipe, copies the newest JPEG of each
watched stream out of shared memory and builds its multipart part once. Clients wait on
the channel's event and write the same bytes object; a slow client is blocked in its
own socket write and simply picks up the newest part when it is ready: at most one
frame in flight per client, no per-client queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.select

from pipeline.child import drain
from pipeline.control import STREAMS, Control
from pipeline.shm import FrameRing, SlotMeta
from web.channel import ADVANCE_OPEN, KEEPALIVE_S, OPEN, Channel
from web.fanout import FanOut

log = logging.getLogger("web")


class FrameHub:
    """One channel per stream (pipeline.control.STREAMS), fed from the JPEG rings."""

    def __init__(self, control: Control, rings: dict[str, FrameRing], wake_r: Any,
                 stream_headers: dict[str, dict[str, str]] | None = None,
                 send_timeout: float = 20.0, *,
                 beat: Callable[[], None] | None = None) -> None:
        self.control = control
        self.beat = beat or (lambda: None)  # the web child's heartbeat
        self.rings = rings
        self.wake_r = wake_r
        headers = stream_headers or {}
        self.channels = {s: Channel(s, headers.get(s)) for s in STREAMS}
        self._pump: gevent.Greenlet | None = None
        self.fan = FanOut(self.channels, self.add_viewer, send_timeout)

    def start(self) -> None:
        """Start the pump greenlet."""
        self._pump = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop the pump and let every stream client served by the shared writer go."""
        if self._pump is not None:
            self._pump.kill(block=False)
        self.fan.close_all()

    def _run(self) -> None:
        fd = self.wake_r.fileno()
        while True:
            self.beat()
            readable, _, _ = gevent.select.select([fd], [], [], 0.5)
            if readable:
                drain(self.wake_r)
            self.poll_rings()
            self.fan.keepalive(time.monotonic(), KEEPALIVE_S)
            for ch in self.channels.values():
                ch.tick()

    def poll_rings(self) -> None:
        """Publish any stream whose ring has a newer frame than its channel."""
        for name, ch in self.channels.items():
            if ch.viewers <= 0 and ch.part is not None:
                continue
            ring = self.rings[name]
            counter = ring.counter()
            if counter == ch.ring_counter:
                continue
            got = ring.read_latest()
            if got is None:
                continue
            meta, jpeg = got
            ch.ring_counter = meta.counter
            ch.publish(meta, jpeg)
            self.fan.publish(ch)

    def add_viewer(self, name: str, delta: int, client: str | None = None) -> None:
        """Count a viewer (from address `client`) in or out; the encoder reads the total
        from the control block."""
        ch = self.channels[name]
        ch.count(delta, client)
        self.control[f"viewers_{name}"] = ch.viewers

    def clients(self) -> dict[str, dict[str, int]]:
        """Viewers by client address and stream, for /status."""
        out: dict[str, dict[str, int]] = {}
        for name, ch in self.channels.items():
            for client, n in ch.clients.items():
                out.setdefault(client, {})[name] = n
        return dict(sorted(out.items()))

    def serve(self, sock: Any, name: str, advance: bool = False,
              client: str | None = None) -> None:
        """Feed one client's socket (headers and opening boundary sent) from the shared
        writer until it goes."""
        self.fan.serve(sock, name, advance, client)

    def stream(self, name: str, min_interval: float = 0.0, advance: bool = False,
               client: str | None = None) -> Iterator[bytes]:
        """Generator of multipart parts for one client; unregisters itself when closed.

        The web server hands plain-HTTP, unthrottled clients to `serve` instead; this
        generator serves the rest (TLS, ?fps=, any other WSGI server). `advance`: parts
        in advance-headers form (for Chromium); `client`: its address, for /status."""
        ch = self.channels[name]
        self.add_viewer(name, 1, client)
        try:
            yield ADVANCE_OPEN if advance else OPEN
            seq = ch.seq
            if ch.fresh():
                yield (ch.advance_part() if advance else ch.part) or b""
            last_sent = time.monotonic()
            while True:
                fresh = ch.wait(seq, KEEPALIVE_S)
                if not fresh and ch.part is None:
                    continue
                if min_interval:
                    gap = min_interval - (time.monotonic() - last_sent)
                    if gap > 0:
                        gevent.sleep(gap)
                part = ch.advance_part() if advance else ch.part
                meta, seq = ch.meta, ch.seq
                assert part is not None and meta is not None
                yield part
                last_sent = time.monotonic()
                ch.parts_sent += 1
                if fresh:
                    ch.observe(time.time() - meta.ts_capture)
        finally:
            self.add_viewer(name, -1, client)

    def snapshot(self, name: str, timeout: float,
                 client: str | None = None) -> tuple[bytes, SlotMeta] | None:
        """The next freshly encoded JPEG of a stream, or None after `timeout` seconds."""
        ch = self.channels[name]
        self.add_viewer(name, 1, client)
        try:
            seq = ch.seq
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if ch.wait(seq, left) and ch.jpeg is not None and ch.meta is not None:
                    return ch.jpeg, ch.meta
        finally:
            self.add_viewer(name, -1, client)
