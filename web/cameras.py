"""Several cameras behind one web process: one app per camera under /cam/NAME/.

Each camera has its own hub, depth-video feed and Flask app built by `create_app`, on its
own rings and control block, so its routes are the same as a one-camera server's. The
unprefixed routes are the first camera's app; /cameras.json, the grid page at / (with
several cameras) and the `cameras` part of /status are the house's own.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from flask import Flask

from pipeline.config import Config
from pipeline.control import STREAMS, Control, claimed
from pipeline.shm import FLAG_NO_SIGNAL, FrameRing
from web.app import build_status, create_app
from web.depth_video import DepthVideoFeed
from web.hub import FrameHub
from web.options import WebOptions

log = logging.getLogger("web")

PREFIX = "/cam/"
CAMERA_ROUTES = ("color", "depth", "combined", "metric", "color.jpg", "depth.jpg",
                 "combined.jpg", "metric.jpg", "depth.png", "camera.json", "status")


@dataclass(frozen=True)
class Rig:
    """Every camera the web process serves: (name, settings, handles) of each camera,
    the first this child's own, and (settings, handles) of each spare slot a camera
    plugged in later may take."""

    cameras: tuple[tuple[str, Config, Any], ...] = ()
    spares: tuple[tuple[Config, Any], ...] = ()


@dataclass
class ServedCamera:
    """What the web process holds of one camera: its settings, control block, hub,
    depth-video feed (where the stage runs), raw and IMU rings."""

    name: str
    cfg: Config
    control: Control
    hub: FrameHub
    feed: DepthVideoFeed | None
    raw: FrameRing
    imu: FrameRing | None

    @property
    def clients(self) -> int:
        """Stream clients of this camera (every multipart route)."""
        n = sum(ch.viewers for ch in self.hub.channels.values())
        return n + (self.feed.viewers if self.feed is not None else 0)


def _own(opts: WebOptions, camera: str) -> WebOptions:
    """A further camera's web options: WebRTC on its own mountpoint, where it has one."""
    webrtc = opts.webrtc.for_camera(camera) if opts.webrtc is not None else None
    return dataclasses.replace(opts, webrtc=webrtc, h264=opts.h264 if webrtc else None)


class House:
    """Every camera's app and the dispatch between them."""

    def __init__(self, cameras: list[ServedCamera], backend: str, opts: WebOptions,
                 connections: Callable[[], dict[str, int]] | None = None) -> None:
        self.cameras = cameras
        self.backend = backend
        self.opts, self.connections = opts, connections
        self.apps: dict[str, Flask] = {}
        self.pending: list[tuple[Control, Callable[[str], ServedCamera]]] = []
        for i, cam in enumerate(cameras):
            self.apps[cam.name] = self._app(cam, first=i == 0)

    def _app(self, cam: ServedCamera, *, first: bool) -> Flask:
        """A camera's app; the first camera's also serves the house's own routes."""
        return create_app(
            cam.cfg, cam.hub, cam.control, self.backend,
            self.opts if first else _own(self.opts, cam.name),
            raw=cam.raw, imu=cam.imu, connections=self.connections, depth_video=cam.feed,
            camera=cam.name, clients=self.clients,
            cameras=self.doc if first else None,
            cameras_status=self.status if first else None,
            metric_sources=self.metric_sources if first else None,
            grid=self.several if first else None)

    def several(self) -> bool:
        """Whether / is the grid: more than one camera is served now."""
        return len(self.cameras) > 1

    def start(self, cam: ServedCamera) -> None:
        """Start a camera's fan-out and depth-video feed (its viewers counted from 0)."""
        for s in STREAMS:
            cam.control[f"viewers_{s}"] = 0
        cam.hub.start()
        if cam.feed is not None:
            cam.feed.start()

    def expect(self, control: Control, build: Callable[[str], ServedCamera]) -> None:
        """A spare slot: once its control block names a camera, `build(name)` serves it."""
        self.pending.append((control, build))

    def watch(self) -> None:
        """Serve each spare slot a camera plugged in has taken (checked twice a second):
        its routes under /cam/NAME/, its entry in /cameras.json, /status and the grid."""
        while self.pending:
            for name, build in claimed(self.pending):
                cam = build(name)
                self.cameras.append(cam)
                self.apps[cam.name] = self._app(cam, first=False)
                self.start(cam)
                log.info("serving camera %s at %s%s/", cam.name, PREFIX, cam.name)
            gevent.sleep(0.5)

    def clients(self) -> int:
        """Stream clients of every camera: what --max-clients counts."""
        return sum(cam.clients for cam in self.cameras)

    def metric_sources(self) -> list[tuple[str, FrameHub, Control]]:
        """Each camera's name, hub and control block, for /metrics."""
        return [(cam.name, cam.hub, cam.control) for cam in self.cameras]

    def doc(self) -> list[dict[str, Any]]:
        """/cameras.json: each camera's name, source, serial, size, rate and routes."""
        out = []
        for cam in self.cameras:
            info = cam.control.info()
            base = f"{PREFIX}{cam.name}/"
            routes = {"page": base, **{r: base + r for r in CAMERA_ROUTES}}
            if cam.feed is not None:
                routes["depth-video"] = base + "depth-video"
            out.append({"name": cam.name, "source": cam.cfg.source,
                        "serial": info.get("serial") or cam.cfg.serial,
                        "width": info.get("width", cam.cfg.width),
                        "height": info.get("height", cam.cfg.height),
                        "fps": cam.cfg.fps, "source_ok": bool(cam.control["source_ok"]),
                        "routes": routes})
        return out

    def status(self) -> dict[str, Any]:
        """/status's `cameras` (each camera's own status, its pids and restarts) and
        `sync` (how the cameras' frame times line up)."""
        out = {}
        for cam in self.cameras:
            doc = build_status(cam.cfg, cam.hub, cam.control, self.backend, depth_video=cam.feed)
            snap = cam.control.snapshot()
            roles = ("capture", "encoder", *(("depthvideo",) if cam.feed else ()))
            doc["pids"] = {r: int(snap[f"pid_{r}"]) for r in roles}
            doc["restarts"] = {r: int(snap[f"restarts_{r}"]) for r in roles}
            doc["heartbeat_age_s"] = {k: v for k, v in doc["heartbeat_age_s"].items()
                                      if k != "web"}
            for key in ("clients", "mcap", "imu", "webrtc", "h264", "janus", "uptime_s"):
                doc.pop(key, None)
            out[cam.name] = doc
        sync = self.sync()
        for name, offset in sync["offset_ms"].items():
            out[name]["offset_ms"] = offset
        return {"cameras": out, "sync": sync}

    def sync(self) -> dict[str, Any]:
        """Each camera's offset to the first: the median difference between its recent
        frame times and the first camera's nearest ones (every source stamps frames in the
        host's clock, a RealSense in its global time, so what remains is the phase of
        free-running sensors); and the spread: the first camera's newest frame time
        against the nearest frame of every other camera that has frames (one showing NO
        SIGNAL has none and no offset), max minus min."""
        times = [[m.ts_capture for m in cam.raw.recent_metas()
                  if not m.flags & FLAG_NO_SIGNAL] for cam in self.cameras]
        ref = times[0]
        offsets: dict[str, float | None] = {}
        for cam, mine in zip(self.cameras, times, strict=True):
            if not ref or not mine:
                offsets[cam.name] = None
                continue
            diffs = [t - min(ref, key=lambda r, t=t: abs(r - t)) for t in mine]
            offsets[cam.name] = round(statistics.median(diffs) * 1000, 2)
        spread = None
        if ref:
            nearest = [min(mine, key=lambda t: abs(t - ref[0])) for mine in times if mine]
            spread = round((max(nearest) - min(nearest)) * 1000, 2)
        return {"reference": self.cameras[0].name, "offset_ms": offsets, "spread_ms": spread}

    def wsgi(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        """The WSGI entry: /cam/NAME/... to that camera's app, the rest to the first's."""
        first = self.apps[self.cameras[0].name]

        def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]
                     ) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path.startswith(PREFIX):
                name, slash, rest = path[len(PREFIX):].partition("/")
                app = self.apps.get(name)
                if app is not None:
                    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + PREFIX + name
                    environ["PATH_INFO"] = slash + rest
                    return app(environ, start_response)
            return first(environ, start_response)

        return dispatch
