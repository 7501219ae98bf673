"""The Foxglove WebSocket child: publish what the connected clients subscribe to.

It runs the `Publisher` (robotics/publisher.py) on a foxglove-sdk WebSocket server. A
channel is read only while a client subscribes to it; a slow client gets fewer frames:
the server keeps a short backlog per client and drops the oldest.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.child import CannotStart, Child, Handles
from pipeline.shm import FrameRing
from robotics import messages as m
from robotics.options import RoboticsOptions
from robotics.publisher import Camera, Publishers, gps_reader, publishers, reason, serve

log = logging.getLogger("robotics")

WS_BACKLOG = 8
"""Messages queued per WebSocket client before the oldest is dropped (bounds memory)."""


class _Listener:
    """WebSocket server callbacks: count clients, send calibration to a new subscriber."""

    def __init__(self) -> None:
        self.publisher: Publishers | None = None
        self.subscriptions: set[tuple[int, int]] = set()
        self.video_clients: dict[str, set[int]] = {}  # by H.264 topic

    def on_subscribe(self, client: Any, channel: Any) -> None:
        self.subscriptions.add((client.id, channel.id))
        if self._video(channel):
            self.video_clients.setdefault(channel.topic, set()).add(client.id)
        log.info("client %d subscribed to %s", client.id, channel.topic)
        if (channel.topic.endswith("/calibration") or channel.topic == m.TOPIC_TF) \
                and self.publisher is not None:
            self.publisher.calibrate_now()

    def _video(self, channel: Any) -> bool:
        pub = self.publisher
        return pub is not None and any(p.video is not None and
                                       channel.topic == p.video.channel.topic()
                                       for p in pub.pubs)

    def viewers(self, topic: str) -> int:
        """Clients subscribed to one camera's H.264 topic."""
        return len(self.video_clients.get(topic, ()))

    def on_unsubscribe(self, client: Any, channel: Any) -> None:
        self.subscriptions.discard((client.id, channel.id))
        if self._video(channel):
            self.video_clients.get(channel.topic, set()).discard(client.id)
        log.info("client %d unsubscribed from %s", client.id, channel.topic)


def foxglove_main(child: Child, opts: RoboticsOptions, first: str = "camera",
                  more: tuple[Camera, ...] = (), spares: tuple[Handles, ...] = ()) -> None:
    """The Foxglove WebSocket child: publish what clients subscribe to, of every camera
    (`first`: the first camera's name, `more`: the others, `spares`: slots of cameras
    plugged in later)."""
    import foxglove  # noqa: PLC0415

    handles = child.handles
    ctx = foxglove.Context()
    listener = _Listener()
    host = opts.foxglove_host or "127.0.0.1"
    try:
        server = foxglove.start_server(
            name="depth camera", host=host, port=opts.foxglove_port, context=ctx,
            server_listener=listener, message_backlog_size=WS_BACKLOG)
    except RuntimeError as exc:
        raise CannotStart(f"--foxglove: cannot listen on {host}:{opts.foxglove_port}: "
                          f"{reason(exc)}") from None
    shown = f"[{host}]" if ":" in host else host
    log.info("Foxglove WebSocket on ws://%s:%d", shown, server.port)
    gps = gps_reader(opts.gps)
    pub = publishers(child, ctx, first, more, depth=opts.foxglove_depth, gps=gps, live=True,
                     spares=spares)
    listener.publisher = pub
    if opts.foxglove_video == "h264":
        rings = [handles.h264, *(h.h264 for _, _, h in more)]
        for one, ring in zip(pub.pubs, rings, strict=True):
            if ring:
                one.add_video(FrameRing.attach(ring), lambda p=one: listener.viewers(
                    p.topic("/camera/h264")) if p.video is not None and
                    p.video.channel.has_sinks() else 0)
    try:
        serve(pub, child)
    finally:
        pub.close()
        if gps is not None:
            gps.stop()
        server.stop()
        log.info("Foxglove WebSocket stopped (sent %s)", pub.summary())
