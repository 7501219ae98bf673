"""Serve a depth camera's color and depth streams as MJPEG over HTTP.

Three processes under one supervisor: capture (camera or synthetic scene) into shared
memory, JPEG encoding, and a Flask/gevent web server fanning each frame out to every
client. Run `python3 app_mp.py --help` for the options.
"""

from __future__ import annotations

import ipaddress
import logging
import multiprocessing
import os
import resource
import sys

from encoder.options import (
    add_depth_video_args,
    add_h264_args,
    depth_video_options,
    h264_options,
)
from media.recorder import JpegRecorder
from pipeline.args import OneLineParser
from pipeline.child import CannotStart, setup_logging
from robotics.options import add_robotics_args, robotics_options
from sinks.display import display_problem
from sinks.tap import TapOptions, taps_by_camera
from web.limits import max_clients_allowed
from web.options import WebOptions, add_web_args, web_options
from webrtc.options import add_webrtc_args, webrtc_options
from wiring.options import pipeline_cameras, pipeline_parser
from wiring.plan import Camera, Plan

log = logging.getLogger("app_mp")


DESCRIPTION = (
    "Stream a RealSense D455 (or the built-in synthetic scene) as MJPEG: / (page), "
    "/color, /depth, /combined, /metric (multipart), /color.jpg etc. (snapshots), "
    "/depth.png (exact depth), /depth-video (metres as 10-bit H.264), /camera.json, "
    "/status (JSON). Several --source options serve several cameras, each under "
    "/cam/NAME/, listed in /cameras.json."
)


def parse_args(argv: list[str] | None = None) -> Plan:
    """Command line -> Plan (one-line error and exit code 2 on bad values)."""
    p = pipeline_parser("app_mp.py", DESCRIPTION)
    add_web_args(p)
    o = p.add_argument_group("recording and display")
    o.add_argument("--record", metavar="[NAME:]PATH.mkv", action="append",
                   help="record the color JPEGs as they are (no re-encoding) into .mkv or "
                   ".avi; NAME: picks a camera (default the first); repeat it per camera")
    o.add_argument("--snapshot-on-exit", metavar="[NAME:]PATH.jpg", action="append",
                   help="save the last color frame when the server stops; NAME: picks a "
                   "camera (default the first); repeat it per camera")
    o.add_argument("--display", action="store_true",
                   help="also show the stream in an OpenCV window (needs a desktop and a "
                   "GUI build of OpenCV); keys toggle filters, q quits")
    add_robotics_args(p)
    add_webrtc_args(p)
    add_h264_args(p)
    add_depth_video_args(p)
    ns = p.parse_args(argv)
    cameras = pipeline_cameras(p, ns)
    name, cfg = cameras[0]
    robotics = robotics_options(ns, p, gps=ns.gps, web=(ns.host, ns.port))
    try:
        web = web_options(ns)
        webrtc = webrtc_options(ns)
    except ValueError as exc:
        p.error(str(exc))
    if web.max_clients_given:
        _check_max_clients(p, web.max_clients)
    try:
        taps = taps_by_camera(ns.record, ns.snapshot_on_exit, [n for n, _ in cameras])
    except ValueError as exc:
        p.error(str(exc))
    for tap in taps.values():
        _check_tap(p, tap)
    if ns.display:
        problem = display_problem()
        if problem:
            p.error(problem)
    # The H.264 stage runs for WebRTC, or idle for /camera/h264 until a sink subscribes.
    h264 = h264_options(ns) if webrtc is not None or robotics.h264 else None
    return Plan(pipeline=cfg, web=web, tap=taps.get(name, TapOptions()),
                display=ns.display, h264=h264, webrtc=webrtc, robotics=robotics,
                depth_video=depth_video_options(ns), name=name,
                more_cameras=tuple(Camera(n, c, taps.get(n)) for n, c in cameras[1:]),
                hotplug=ns.source in (None, ["auto"]) and not ns.serial)


def _check_tap(p: OneLineParser, tap: TapOptions) -> None:
    """A recording's container and a snapshot's directory, checked before anything runs."""
    if tap.record:
        try:
            JpegRecorder.check_path(tap.record)
        except (ValueError, RuntimeError) as exc:
            p.error(f"--record: {exc}")
    if tap.snapshot_on_exit and not os.access(
            os.path.dirname(os.path.abspath(tap.snapshot_on_exit)), os.W_OK):
        p.error(f"--snapshot-on-exit {tap.snapshot_on_exit}: directory not writable")


def _check_max_clients(p: OneLineParser, wanted: int) -> None:
    """--max-clients must fit in the open-files limit the web process can raise itself to."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and wanted > max_clients_allowed(hard):
        p.error(f"--max-clients {wanted}: the open-files limit ({hard}) allows at most "
                f"{max_clients_allowed(hard)} (raise it with ulimit -n or LimitNOFILE=)")


def main(argv: list[str] | None = None) -> int:
    """Parse options, build the pipeline, supervise it until Ctrl-C or SIGTERM."""
    plan = parse_args(argv)
    setup_logging(plan.pipeline.log_level)
    multiprocessing.current_process().name = "main"
    web = plan.web or WebOptions()
    if not web.auth.enabled and not _loopback(web.host):
        log.warning("no --auth/--token and listening on %s: anyone who can reach this "
                    "port can watch", web.host)
    from wiring.launch import run_pipeline  # noqa: PLC0415  (children re-import this module)

    try:
        return run_pipeline(plan)
    except CannotStart as exc:
        log.error("%s", exc)
        return exc.code


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
