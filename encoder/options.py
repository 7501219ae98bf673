"""The H.264 stage's options, declared once for every entry point that can run it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.args import bitrate, ranged

MIN_H264, MAX_H264 = 100_000, 50_000_000
DEFAULT_H264_BITRATE = 2_500_000
"""WebRTC viewers, the robotics sinks and the push share it: at 720p30 it keeps SSIM near
MJPEG's at about a sixteenth of the bytes, and fits a 4 Mbit/s uplink with room for GPS."""
DEFAULT_GOP = 60


@dataclass(frozen=True)
class H264Options:
    """Target bit rate, keyframe interval and VBV buffer of the one H.264 encode."""

    bitrate: int = DEFAULT_H264_BITRATE
    gop: int = DEFAULT_GOP
    vbv_seconds: float = 1.0  # the encoder's VBV buffer; a thin push link wants less


@dataclass(frozen=True)
class RtpTarget:
    """Where the stage sends RTP (a Janus mountpoint) and listens for its RTCP."""

    host: str
    video_port: int
    rtcp_port: int


def add_h264_args(p: argparse.ArgumentParser) -> None:
    """The "H.264" option group (WebRTC, /camera/h264 and the H.264 push)."""
    g = p.add_argument_group("H.264 (WebRTC, Foxglove/MCAP video, H.264 push)")
    g.add_argument("--h264-bitrate", type=bitrate(MIN_H264, MAX_H264),
                   default=DEFAULT_H264_BITRATE, metavar="RATE",
                   help="H.264 target bit rate, e.g. 2.5M or 800k (default 2.5M; "
                   f"{MIN_H264 // 1000}k to {MAX_H264 // 10**6}M); an adapting push goes "
                   "lower when its link needs it, and --max-bitrate caps it")
    g.add_argument("--h264-gop", type=ranged(int, 1, 600, "a number of frames"),
                   default=DEFAULT_GOP, metavar="FRAMES",
                   help="frames between keyframes (default 60: 2 s at 30 fps); a viewer "
                   "joining or losing packets, or a push (re)connecting, gets one at once")


def h264_options(ns: argparse.Namespace) -> H264Options:
    """The options as parsed."""
    return H264Options(bitrate=ns.h264_bitrate, gop=ns.h264_gop)


MIN_DEPTH_VIDEO, MAX_DEPTH_VIDEO = 200_000, 50_000_000
DEFAULT_DEPTH_VIDEO_BITRATE = 3_000_000
"""The cap of the depth video: the synthetic scene at 1280x720 needs about 2.4 Mbit/s at
the default quality (docs/DEPTH_VIDEO.md); a busy scene costs accuracy, never the cap."""
DEFAULT_DEPTH_VIDEO_CRF = 10.0
"""libx264's constant quality for depth: 98-99 % of valid pixels within 1 % on the
synthetic scene, and the point where the curve flattens (docs/DEPTH_VIDEO.md)."""


@dataclass(frozen=True)
class DepthVideoOptions:
    """The depth-video stage: its bit rate cap, constant quality and keyframe interval."""

    bitrate: int = DEFAULT_DEPTH_VIDEO_BITRATE
    crf: float = DEFAULT_DEPTH_VIDEO_CRF
    gop: int = DEFAULT_GOP


def add_depth_video_args(p: argparse.ArgumentParser) -> None:
    """The "depth video" option group (/depth-video: metres as 10-bit H.264)."""
    g = p.add_argument_group("depth video (/depth-video: metric depth as 10-bit H.264)")
    g.add_argument("--no-depth-video", dest="depth_video", action="store_false",
                   help="do not run the depth-video stage (it encodes only while "
                   "someone watches /depth-video)")
    g.add_argument("--depth-video-bitrate", type=bitrate(MIN_DEPTH_VIDEO, MAX_DEPTH_VIDEO),
                   default=DEFAULT_DEPTH_VIDEO_BITRATE, metavar="RATE",
                   help="cap on the depth video's bit rate, e.g. 3M or 1500k (default 3M; "
                   f"{MIN_DEPTH_VIDEO // 1000}k to {MAX_DEPTH_VIDEO // 10**6}M); below what "
                   "the scene needs, depth loses accuracy rather than the link its room")


def depth_video_options(ns: argparse.Namespace) -> DepthVideoOptions | None:
    """The options as parsed; None with --no-depth-video."""
    if not ns.depth_video:
        return None
    return DepthVideoOptions(bitrate=ns.depth_video_bitrate, gop=ns.h264_gop)
