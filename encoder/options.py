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
