"""Command-line options of the robotics sinks: the Foxglove WebSocket server and MCAP recording.

One frozen dataclass, built by its own argparse group, handed to the sink children as an
argument; every check that can fail is done here so a bad value is one line and exit 2.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from pipeline.args import byte_size, duration, host_arg, parse_hostport, ranged

DEPTH_CHOICES = ("raw", "off")
MCAP_DEPTH_CHOICES = ("raw", "png", "off")
COMPRESSIONS = ("zstd", "lz4", "none")
PROFILES = ("foxglove", "ros2")
VIDEO_CHOICES = ("h264", "off")


@dataclass(frozen=True)
class RoboticsOptions:
    """What the Foxglove server and the MCAP recorder publish, and where."""

    foxglove_host: str | None = None
    foxglove_port: int = 8765
    foxglove_depth: str = "raw"
    record_mcap: str | None = None
    record_mcap_depth: str = "raw"
    record_mcap_compression: str = "zstd"
    record_mcap_profile: str = "foxglove"
    gps: str | None = None
    foxglove_video: str = "h264"
    record_mcap_video: str = "off"
    record_mcap_split_size: int | None = None
    record_mcap_split_duration: float | None = None
    record_mcap_keep: int | None = None
    record_mcap_flush: float = 1.0

    @property
    def split(self) -> bool:
        """True when the recording is a numbered series of files (run_0.mcap, run_1.mcap ...)."""
        return bool(self.record_mcap_split_size or self.record_mcap_split_duration)

    @property
    def enabled(self) -> bool:
        return bool(self.children())

    @property
    def h264(self) -> bool:
        """True when a child may publish /camera/h264, so the H.264 stage must run."""
        return (self.foxglove_host is not None and self.foxglove_video == "h264") or (
            bool(self.record_mcap) and self.record_mcap_video == "h264")

    def children(self) -> tuple[str, ...]:
        """Names of the sink children these options start (each gets its own wake-up pipe)."""
        return (("foxglove",) if self.foxglove_host is not None else ()) + (
            ("mcap",) if self.record_mcap else ())


def add_robotics_args(p: argparse.ArgumentParser, *, gps: bool = True) -> None:
    """The Foxglove/MCAP group; `gps=False` where the entry point has its own --gps."""
    g = p.add_argument_group("robotics (Foxglove live view, MCAP recording)")
    g.add_argument("--foxglove", metavar="HOST:PORT",
                   help="serve a Foxglove WebSocket (ws://HOST:PORT) with /camera/color "
                   "(JPEG), /camera/depth (16UC1), /camera/calibration and /gps; only "
                   "subscribed topics are produced")
    g.add_argument("--foxglove-depth", choices=DEPTH_CHOICES, default="raw",
                   help="depth on the WebSocket: raw (16UC1 in device units, default) or off")
    g.add_argument("--foxglove-video", choices=VIDEO_CHOICES, default="h264",
                   help="/camera/h264 on the WebSocket: h264 (CompressedVideo, encoded only "
                   "while a client subscribes; default) or off")
    g.add_argument("--record-mcap", metavar="PATH.mcap",
                   help="record the same topics to an MCAP file, finalized on every exit")
    g.add_argument("--record-mcap-depth", choices=MCAP_DEPTH_CHOICES, default="raw",
                   help="depth in the MCAP file: raw (16UC1, compressed losslessly with the "
                   "chunks, default), png (lossless 16-bit PNG, CompressedImage) or off")
    g.add_argument("--record-mcap-video", choices=VIDEO_CHOICES, default="off",
                   help="also record color as H.264 (/camera/h264, CompressedVideo): "
                   "h264 or off (default; it costs an H.264 encode for the whole recording)")
    g.add_argument("--record-mcap-compression", choices=COMPRESSIONS, default="zstd",
                   help="MCAP chunk compression (default zstd; lz4 costs less CPU)")
    g.add_argument("--record-mcap-profile", choices=PROFILES, default="foxglove",
                   help="message types in the MCAP file: foxglove (Foxglove schemas in "
                   "protobuf, default) or ros2 (sensor_msgs in CDR, for ros2 bag play)")
    g.add_argument("--record-mcap-split-size", metavar="SIZE", type=byte_size,
                   help="start a new file when the current one reaches SIZE (e.g. 500M, "
                   "1G; binary units): --record-mcap DIR/run.mcap writes DIR/run_0.mcap, "
                   "DIR/run_1.mcap ...")
    g.add_argument("--record-mcap-split-duration", metavar="DURATION", type=duration,
                   help="start a new file every DURATION (e.g. 10m, 5s, 1h); with a size "
                   "too, whichever comes first")
    g.add_argument("--record-mcap-keep", metavar="N", type=int,
                   help="with a split, delete the oldest files of the run beyond the newest N")
    g.add_argument("--record-mcap-flush", metavar="SECONDS",
                   type=ranged(float, 0.1, 60.0, "a number of seconds"), default=1.0,
                   help="close the open chunk and write it out at least this often, so a "
                   "killed server loses at most about this much (default 1)")
    if gps:
        g.add_argument("--gps", metavar="SPEC",
                       help="publish GPS fixes as /gps: gpsd://HOST:PORT, "
                       "nmea:/dev/ttyUSB0[:BAUD] or fixed:LAT,LON[,ALT]")


def robotics_options(ns: argparse.Namespace, p: argparse.ArgumentParser, *,
                     gps: str | None, web: tuple[str, int] | None = None,
                     other_gps_readers: int = 0) -> RoboticsOptions:
    """Check the parsed group and build the options (p.error on a bad value: exit 2).

    `other_gps_readers`: GPS readers of the run besides the robotics children (the push's).
    """
    host, port = None, 8765
    if ns.foxglove:
        try:
            host, port = parse_hostport(ns.foxglove)
            host = host_arg(host)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            p.error(f"--foxglove {ns.foxglove}: {exc}")
        if web is not None and port and port == web[1] and _overlap(host, web[0]):
            p.error(f"--foxglove {ns.foxglove}: port {port} is the web server's port")
    path = ns.record_mcap
    if path:
        if not path.endswith(".mcap"):
            p.error(f"--record-mcap {path}: the file name must end in .mcap")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            p.error(f"--record-mcap {path}: directory {folder} is not writable")
        if ns.record_mcap_keep is not None and not (ns.record_mcap_split_size
                                                    or ns.record_mcap_split_duration):
            p.error("--record-mcap-keep needs --record-mcap-split-size or "
                    "--record-mcap-split-duration")
        if ns.record_mcap_keep is not None and ns.record_mcap_keep < 1:
            p.error(f"--record-mcap-keep {ns.record_mcap_keep}: keep at least 1 file")
        if ns.record_mcap_video == "h264" and ns.record_mcap_profile == "ros2":
            p.error("--record-mcap-video h264: the ros2 profile has no standard video "
                    "message; use --record-mcap-profile foxglove")
    if gps and gps.strip().lower() != "none":
        from push.gps.spec import parse_gps_spec  # noqa: PLC0415

        try:
            parse_gps_spec(gps)
        except ValueError as exc:
            p.error(f"--gps: {exc}")
        readers = bool(ns.foxglove) + bool(path) + other_gps_readers
        if readers > 1 and gps.strip().lower().startswith("nmea:"):
            p.error("--gps nmea: would be read by several processes, but a serial port has "
                    "one reader; share it through gpsd (--gps gpsd://127.0.0.1:2947)")
    else:
        gps = None
    return RoboticsOptions(
        foxglove_host=host, foxglove_port=port, foxglove_depth=ns.foxglove_depth,
        record_mcap=path, record_mcap_depth=ns.record_mcap_depth,
        record_mcap_compression=ns.record_mcap_compression,
        record_mcap_profile=ns.record_mcap_profile, gps=gps,
        foxglove_video=ns.foxglove_video, record_mcap_video=ns.record_mcap_video,
        record_mcap_split_size=ns.record_mcap_split_size,
        record_mcap_split_duration=ns.record_mcap_split_duration,
        record_mcap_keep=ns.record_mcap_keep, record_mcap_flush=ns.record_mcap_flush,
    )


def _overlap(a: str, b: str) -> bool:
    wild = ("0.0.0.0", "::", "")
    return a == b or a in wild or b in wild
