"""Point-to-point mode: push the stream to one listener over HTTPS (or TCP), with GPS.

    ffmpeg -listen 1 -key_file server.key -cert_file server.crt -f mpjpeg \\
        -i https://0.0.0.0:8443 -c copy out.mjpeg
    python3 app_https_client.py -v https://HOST:8443 -g https://HOST/gps -r 5
    python3 app_https_client.py -v rtmp://HOST/live/cam       # H.264 to a media server

Same capture and encoder processes as app_mp.py; the web server is replaced by a push
process (and a GPS process when -g is given).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys

from encoder.options import (
    DEFAULT_DEPTH_VIDEO_BITRATE,
    MIN_DEPTH_VIDEO,
    MIN_H264,
    DepthVideoOptions,
    H264Options,
    add_h264_args,
    h264_options,
)
from media.urls import parse_destination, redact
from pipeline.args import bitrate, ranged
from pipeline.child import CannotStart, setup_logging
from push.gps.spec import parse_gps_spec
from push.h264 import h264_cap
from push.options import GpsOptions, PushOptions
from robotics.options import add_robotics_args, robotics_options
from wiring.options import pipeline_cameras, pipeline_parser
from wiring.plan import Plan

log = logging.getLogger("app_https_client")

DEFAULT_GPS = "gpsd://127.0.0.1:2947"


_seconds = ranged(float, 0.05, 3600, "a number of seconds")
MIN_BITRATE, MAX_BITRATE = 64_000, 10 * 10**9
# The push's VBV buffer: a keyframe at most ~0.2 s of the top bit rate, so one IDR queues
# a few frames on a link at its limit instead of a ring's worth (docs/BENCHMARKS.md).
VBV_S = 0.2
SCHEMES = ("https", "http", "tcp", "rtmp", "rtmps", "rtsp")
MEDIA_SCHEMES = ("rtmp", "rtmps", "rtsp")


_bitrate = bitrate(MIN_BITRATE, MAX_BITRATE)


DESCRIPTION = (
    "Push the camera stream to one listener (e.g. ffmpeg -listen 1) over HTTPS, HTTP or "
    "raw TCP as MJPEG or H.264 in MPEG-TS, or publish H.264 to an RTMP media server, "
    "retrying while it is down, and POST GPS fixes to a URL."
)


def _stream_arg(text: str) -> tuple[str | None, str]:
    """`[NAME/]STREAM` -> (NAME or None, STREAM), STREAM one of combined, color, depth."""
    name, _, stream = text.rpartition("/")
    if stream not in ("combined", "color", "depth"):
        raise argparse.ArgumentTypeError(f"{stream!r}: choose combined, color or depth")
    return (name or None), stream


def parse_args(argv: list[str] | None = None) -> Plan:
    """Command line -> Plan: the pipeline, the push, and GPS and robotics if asked for."""
    p = pipeline_parser("app_https_client.py", DESCRIPTION)
    g = p.add_argument_group("destination")
    g.add_argument("-v", "--video", required=True, metavar="URL",
                   help="https://HOST:PORT[/path], http://..., tcp://HOST:PORT (bare JPEGs, "
                   "or a bare MPEG-TS with --format h264), rtmp[s]://HOST[:PORT]/APP/STREAM "
                   "(H.264 in FLV to a media server such as nginx-rtmp) or "
                   "rtsp://HOST[:PORT]/PATH (H.264 announced to an RTSP server)")
    g.add_argument("-g", "--gps-url", metavar="URL",
                   help="https:// or http:// URL that receives each GPS fix as a JSON POST; "
                   "without it no GPS is read")
    g.add_argument("-r", "--retry", type=_seconds, default=5.0, metavar="SECONDS",
                   help="seconds between attempts while a destination is down (default 5)")
    g.add_argument("--max-retries", type=ranged(int, 0, 1 << 31, "a whole number"),
                   default=None, metavar="N",
                   help="give up (exit code 3) after N failed attempts in a row "
                   "(default: retry forever)")
    g.add_argument("--format", dest="fmt", choices=("mpjpeg", "mjpeg", "h264"), default=None,
                   help="mpjpeg: multipart parts with Content-Length and X-Timestamp "
                   "(default); mjpeg: concatenated JPEGs (always so for tcp:// unless h264); "
                   "h264: color as H.264 in MPEG-TS, capture time as PTS (the only format "
                   "for rtmp:// and rtsp://)")
    g.add_argument("--depth", action="store_true",
                   help="with --format h264 to http(s):// or tcp://: also carry depth in "
                   "metres as 10-bit H.264 (the depth video), as a second stream of the "
                   "same MPEG-TS; python3 -m depthclient.ts turns a recording of it into "
                   "metres")
    g.add_argument("--stream", type=_stream_arg, default=(None, "combined"),
                   metavar="[NAME/]STREAM",
                   help="what to push: combined (default: color and depth side by side), "
                   "color or depth; NAME/ picks one camera of several --source options "
                   "(default the first)")
    g.add_argument("--ca-file", metavar="PEM",
                   help="CA certificate(s) to verify the listener with (private CA or a "
                   "self-signed certificate)")
    g.add_argument("--insecure", action="store_true",
                   help="do not verify the listener's certificate (warns)")
    g.add_argument("--gps", default=None, metavar="SPEC",
                   help="gpsd://HOST:PORT (default gpsd://127.0.0.1:2947), "
                   "nmea:/dev/ttyUSB0[:BAUD], fixed:LAT,LON[,ALT], or none")
    g.add_argument("--gps-interval", type=_seconds, default=1.0, metavar="SECONDS",
                   help="seconds between GPS posts (default 1)")
    a = p.add_argument_group("adaptive push")
    a.add_argument("--max-bitrate", type=_bitrate, default=None, metavar="RATE",
                   help="cap the video push at RATE bits/s (e.g. 4M, 800k, 2500000; "
                   f"{MIN_BITRATE // 1000}k to {MAX_BITRATE // 10**9}G); frames that would "
                   "exceed it are skipped and, when adapting, frames are made to fit it")
    a.add_argument("--no-adapt", dest="adapt", action="store_false",
                   help="always push at --quality and full size (default: measure the link "
                   "and lower quality, then size, then rate to keep frames flowing)")
    a.add_argument("--min-quality", type=ranged(int, 1, 100, "a whole number"), default=30,
                   metavar="Q", help="lowest JPEG quality adapting may choose (default 30)")
    a.add_argument("--min-width", type=ranged(int, 16, 7680, "a whole number"), default=320,
                   metavar="PIXELS",
                   help="narrowest frame adapting may choose (default 320; frames keep "
                   "their aspect ratio)")
    add_robotics_args(p, gps=False)
    add_h264_args(p)
    ns = p.parse_args(argv)
    camera, ns.stream = ns.stream
    if ns.min_quality > ns.quality:
        p.error(f"--min-quality {ns.min_quality} is above --quality {ns.quality}")
    try:
        scheme = parse_destination(ns.video, SCHEMES)[0]
        if ns.gps_url:
            parse_destination(ns.gps_url, ("https", "http"))
    except ValueError as exc:
        p.error(str(exc))
    if scheme in MEDIA_SCHEMES and ns.fmt not in (None, "h264"):
        p.error(f"--format {ns.fmt}: {scheme}:// carries H.264 only (--format h264)")
    ns.fmt = ns.fmt or ("h264" if scheme in MEDIA_SCHEMES else "mpjpeg")
    if ns.fmt == "h264":
        argv_ = argv if argv is not None else sys.argv
        if "--stream" in argv_ and ns.stream != "color":
            p.error(f"--stream {ns.stream}: H.264 carries the color stream only")
        ns.stream = "color"
        if ns.max_bitrate is not None and ns.max_bitrate < MIN_H264:
            p.error(f"--max-bitrate {ns.max_bitrate:g}: H.264 needs at least "
                    f"{MIN_H264 // 1000}k bit/s")
    if ns.depth and ns.fmt != "h264":
        p.error("--depth needs --format h264 (the depth video goes beside H.264 colour)")
    if ns.depth and scheme in MEDIA_SCHEMES:
        p.error(f"--depth: {scheme}:// carries one video stream; push to http(s):// or tcp://")
    if ns.ca_file:
        try:
            open(ns.ca_file, "rb").close()
        except OSError as exc:
            p.error(f"--ca-file {ns.ca_file}: {exc.strerror}")
    given_gps = ns.gps is not None  # asked for on the command line, not the default
    ns.gps = ns.gps or DEFAULT_GPS
    if ns.gps_url and ns.gps != "none":
        try:
            parse_gps_spec(ns.gps)
        except ValueError as exc:
            p.error(f"--gps: {exc}")
    cameras = dict(pipeline_cameras(p, ns))
    camera = camera or next(iter(cameras))
    if camera not in cameras:
        p.error(f"--stream {camera}/{ns.stream}: no camera named {camera!r} "
                f"(cameras: {', '.join(cameras)})")
    cfg = cameras[camera]
    # /gps on Foxglove and in MCAP when a GPS is read anyway (-g) or --gps is given.
    push_reads_gps = bool(ns.gps_url) and ns.gps != "none"
    gps = ns.gps if ns.gps_url or given_gps else None
    robotics = robotics_options(ns, p, gps=gps, other_gps_readers=int(push_reads_gps))
    push = PushOptions(url=ns.video, stream=ns.stream, fmt=ns.fmt, retry=ns.retry,
                       max_retries=ns.max_retries, ca_file=ns.ca_file, insecure=ns.insecure,
                       adapt=ns.adapt, max_bitrate=ns.max_bitrate, max_quality=cfg.quality,
                       min_quality=ns.min_quality, min_width=ns.min_width,
                       h264=h264_options(ns), depth=ns.depth)
    gps_opts = (GpsOptions(spec=ns.gps, url=ns.gps_url, interval=ns.gps_interval,
                           ca_file=ns.ca_file, insecure=ns.insecure)
                if push_reads_gps else None)
    # The H.264 stage: for the push (a small VBV so one keyframe cannot flood a thin link,
    # its rate the push's cap), or idle for the robotics sinks' /camera/h264.
    h264 = None
    if push.fmt == "h264":
        h264 = H264Options(bitrate=h264_cap(push), gop=push.h264.gop, vbv_seconds=VBV_S)
    elif robotics.h264:
        h264 = push.h264
    # The depth video beside it: capped at half of what colour may reach, so on a thin
    # link depth loses accuracy before colour loses its frames.
    depth_video = (DepthVideoOptions(bitrate=min(DEFAULT_DEPTH_VIDEO_BITRATE,
                                                 max(h264_cap(push) // 2, MIN_DEPTH_VIDEO)),
                                     gop=push.h264.gop) if push.depth else None)
    return Plan(pipeline=cfg, push=push, gps=gps_opts, h264=h264, robotics=robotics,
                depth_video=depth_video, name=camera)


def main(argv: list[str] | None = None) -> int:
    """Parse options and run capture → encoder → push (+ GPS) under the supervisor."""
    plan = parse_args(argv)
    setup_logging(plan.pipeline.log_level)
    multiprocessing.current_process().name = "main"
    opts = plan.push
    assert opts is not None
    if opts.insecure and opts.url.startswith("https"):
        log.warning("--insecure: the listener's certificate is NOT verified")
    cap = f", at most {opts.max_bitrate / 1e6:g} Mbit/s" if opts.max_bitrate else ""
    if opts.fmt == "h264":
        top = opts.h264.bitrate / 1e6
        how = f"adaptive bit rate up to {top:g} Mbit/s" if opts.adapt else f"{top:g} Mbit/s"
    else:
        how = (f"adaptive (quality {opts.min_quality}-{opts.max_quality}, width >= "
               f"{opts.min_width})" if opts.adapt else f"fixed quality {opts.max_quality}")
    what = f"{opts.stream} and depth (10-bit H.264)" if opts.depth else opts.stream
    log.info("pushing %s of camera %s as %s to %s, %s%s", what, plan.name, opts.fmt,
             redact(opts.url), how, cap)
    from wiring.launch import run_pipeline  # noqa: PLC0415  (children re-import this module)

    try:
        return run_pipeline(plan)
    except CannotStart as exc:
        log.error("%s", exc)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
