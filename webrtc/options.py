"""The WebRTC sink's options: one frozen dataclass built by its own argparse group."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from encoder.options import RtpTarget
from pipeline.args import ranged

DEFAULT_JANUS_BIN = "/usr/bin/janus"
MOUNTPOINT_ID = 1

@dataclass(frozen=True)
class Mount:
    """A further camera's mountpoint on the private Janus: its id, RTP ports and size."""

    camera: str
    mountpoint: int
    video_port: int
    rtcp_port: int
    width: int
    height: int


@dataclass(frozen=True)
class WebRTCOptions:
    """Where the H.264 goes and how browsers reach it.

    `janus_url` None means a private Janus, started from `janus_bin` with a generated
    configuration in `workdir` and its HTTP API on `http_port`; otherwise the Janus at
    that URL is used and RTP goes to `rtp_host`:`video_port` (RTCP `rtcp_port`).
    """

    janus_bin: str = DEFAULT_JANUS_BIN
    janus_url: str | None = None
    mountpoint: int = MOUNTPOINT_ID
    rtp_host: str = "127.0.0.1"
    video_port: int = 0
    rtcp_port: int = 0
    http_port: int = 0
    api_secret: str = ""
    workdir: str = ""
    ice_servers: tuple[str, ...] = ()
    nat_1_1: str | None = None
    mounts: tuple[Mount, ...] = ()  # further cameras' mountpoints (a private Janus only)

    def for_camera(self, camera: str) -> WebRTCOptions | None:
        """These options as camera `camera`'s page and stage see them (its mountpoint and
        ports); None when it has no mountpoint."""
        for mount in self.mounts:
            if mount.camera == camera:
                return replace(self, mountpoint=mount.mountpoint, video_port=mount.video_port,
                               rtcp_port=mount.rtcp_port, mounts=())
        return None

    @property
    def private(self) -> bool:
        """True when this run starts its own Janus."""
        return self.janus_url is None

    @property
    def api_url(self) -> str:
        """Base URL of the Janus HTTP API (…/janus) the web process proxies to."""
        if self.janus_url is not None:
            return self.janus_url.rstrip("/")
        return f"http://127.0.0.1:{self.http_port}/janus"

    @property
    def rtp_target(self) -> RtpTarget:
        """Where the H.264 stage sends RTP: the mountpoint's ports, and no secret."""
        return RtpTarget(self.rtp_host, self.video_port, self.rtcp_port)


def add_webrtc_args(p: argparse.ArgumentParser) -> None:
    """The `WebRTC (H.264 through Janus)` option group."""
    g = p.add_argument_group("WebRTC (H.264 through Janus)")
    g.add_argument("--webrtc", dest="webrtc_on", action="store_true",
                   help="also serve color as H.264 over WebRTC through a private Janus "
                   "(Debian package janus); the page's player switch picks it")
    g.add_argument("--janus-bin", default=DEFAULT_JANUS_BIN, metavar="PATH",
                   help=f"Janus binary for the private gateway (default {DEFAULT_JANUS_BIN})")
    g.add_argument("--janus", dest="janus_url", metavar="URL",
                   help="use the Janus HTTP API at URL (e.g. http://gw:8088/janus) instead of "
                   "a private one; needs --janus-rtp and a mountpoint (see README)")
    g.add_argument("--janus-rtp", metavar="HOST:PORT:RTCPPORT",
                   help="with --janus: where that Janus's RTP mountpoint listens")
    g.add_argument("--janus-secret", metavar="SECRET", default=os.environ.get("JANUS_API_SECRET"),
                   help="with --janus: that Janus's api_secret (default: $JANUS_API_SECRET; a "
                   "private Janus gets a random one)")
    g.add_argument("--janus-mountpoint", type=ranged(int, 1, 1 << 31, "a mountpoint id"),
                   default=MOUNTPOINT_ID, help="with --janus: the mountpoint id (default 1)")
    g.add_argument("--ice-server", dest="ice_servers", action="append", default=[],
                   metavar="URL", help="STUN/TURN server for browsers and Janus, e.g. "
                   "stun:stun.example.org:3478 or turn:USER:PASS@turn.example.org:3478 "
                   "(repeatable)")
    g.add_argument("--nat-1-1", metavar="PUBLIC_IP",
                   help="Janus advertises this public address in its host candidates "
                   "(a 1:1 NAT, e.g. a cloud VM)")


def _free_udp_pair() -> tuple[int, int]:
    """Two UDP ports free on 127.0.0.1 a moment ago (RTP, RTCP)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        for s in socks:
            s.close()


def _free_tcp() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ice(url: str) -> str:
    scheme = url.split(":", 1)[0]
    if scheme not in ("stun", "turn", "turns") or ":" not in url:
        raise ValueError(f"--ice-server {url!r}: expected stun:HOST[:PORT] or "
                         "turn:USER:PASS@HOST[:PORT]")
    return url


def webrtc_options(ns: argparse.Namespace) -> WebRTCOptions | None:
    """Options from the parsed command line (None without --webrtc); ValueError on nonsense."""
    if not ns.webrtc_on:
        if ns.janus_url or ns.janus_rtp:
            raise ValueError("--janus/--janus-rtp need --webrtc")
        return None
    ice = tuple(_ice(u) for u in ns.ice_servers)
    opts = WebRTCOptions(janus_bin=ns.janus_bin, ice_servers=ice, nat_1_1=ns.nat_1_1)
    if ns.janus_url:
        parts = urlsplit(ns.janus_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--janus {ns.janus_url!r}: expected http(s)://HOST:PORT/janus")
        if not ns.janus_rtp:
            raise ValueError("--janus needs --janus-rtp HOST:PORT:RTCPPORT (its mountpoint)")
        host, _, ports = ns.janus_rtp.rpartition(":")
        host, _, port = host.rpartition(":")
        try:
            video, rtcp = int(port), int(ports)
        except ValueError:
            video = rtcp = 0
        if not (host and 0 < video < 65536 and 0 < rtcp < 65536):
            raise ValueError(f"--janus-rtp {ns.janus_rtp!r}: expected HOST:PORT:RTCPPORT")
        return replace(opts, janus_url=ns.janus_url, rtp_host=host.strip("[]"),
                       video_port=video, rtcp_port=rtcp, mountpoint=ns.janus_mountpoint,
                       api_secret=ns.janus_secret or "")
    return opts


def janus_problem(path: str) -> str | None:
    """Why the private Janus cannot start from `path`, or None when it can be tried."""
    exe = shutil.which(path) if os.sep not in path else path
    if exe is None or not os.path.isfile(exe):
        return f"Janus binary {path} not found (Debian: apt install janus)"
    if not os.access(exe, os.X_OK):
        return f"Janus binary {path} is not executable"
    return None


def allocate(opts: WebRTCOptions, workdir: str,
             more: tuple[tuple[str, int, int], ...] = ()) -> WebRTCOptions:
    """Ports, API secret and working directory of a private Janus, chosen at start, and a
    mountpoint (id 2, 3, ...) with its ports for each further camera of `more` (name,
    width, height)."""
    if not opts.private:
        return opts
    video, rtcp = _free_udp_pair()
    mounts = tuple(Mount(name, opts.mountpoint + i, *_free_udp_pair(), width, height)
                   for i, (name, width, height) in enumerate(more, start=1))
    return replace(opts, video_port=video, rtcp_port=rtcp, http_port=_free_tcp(),
                   api_secret=os.urandom(16).hex(), workdir=workdir, mounts=mounts)
