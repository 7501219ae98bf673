"""Serve a depth camera's color and depth streams as MJPEG over HTTP.

Three processes under one supervisor: capture (camera or synthetic scene) into shared
memory, JPEG encoding, and a Flask/gevent web server fanning each frame out to every
client. Run `python3 app_mp.py --help` for the options.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys

from pipeline.child import CannotStart, setup_logging
from pipeline.config import Config, OneLineParser
from robotics.options import add_robotics_args, robotics_options
from wiring.options import (
    add_common_args,
    add_encoder_args,
    add_source_args,
    config_from,
    finish,
)

log = logging.getLogger("app_mp")


def parse_args(argv: list[str] | None = None) -> Config:
    """Command line -> Config (one-line error and exit code 2 on bad values)."""
    from pipeline.config import _fps, _host, _port, _positive_int  # noqa: PLC0415

    p = OneLineParser(
        prog="app_mp.py",
        description="Stream a RealSense D455 (or the built-in synthetic scene) as MJPEG: "
        "/ (page), /color, /depth, /combined, /metric (multipart), /color.jpg etc. (snapshots), "
        "/depth.png (exact depth), /camera.json, /status (JSON).",
    )
    add_source_args(p)
    add_encoder_args(p)
    g = p.add_argument_group("web server")
    g.add_argument("--host", type=_host, default="0.0.0.0",
                   help="address to listen on (default 0.0.0.0, all IPv4 interfaces)")
    g.add_argument("--port", type=_port, default=5000, help="TCP port (default 5000)")
    o = p.add_argument_group("recording and display")
    o.add_argument("--record", metavar="PATH.mkv",
                   help="record the color JPEGs as they are (no re-encoding) into .mkv or .avi")
    o.add_argument("--snapshot-on-exit", metavar="PATH.jpg",
                   help="save the last color frame when the server stops")
    o.add_argument("--display", action="store_true",
                   help="also show the stream in an OpenCV window (needs a desktop and a "
                   "GUI build of OpenCV); keys toggle filters, q quits")
    s = p.add_argument_group("access and limits")
    s.add_argument("--auth", metavar="USER:PASSWORD",
                   help="require HTTP Basic auth on every route")
    s.add_argument("--auth-file", metavar="PATH",
                   help="Basic-auth users, one USER:HASH per line "
                   "(make a line with: python3 -m web.auth USER)")
    s.add_argument("--token", help="accept this token as ?token=... or 'Authorization: Bearer'")
    s.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    s.add_argument("--key", metavar="PEM", help="private key for --cert")
    s.add_argument("--max-clients", type=_positive_int, default=None,
                   help="stream clients at once; more get 503 with Retry-After (default 500, "
                   "or fewer if the open-files limit allows fewer)")
    s.add_argument("--allow-origin", metavar="ORIGIN",
                   help="CORS: send Access-Control-Allow-Origin: ORIGIN (off by default)")
    s.add_argument("--fps-limit", type=_fps, default=None,
                   help="highest rate sent to any client (clients may ask lower with ?fps=)")
    add_robotics_args(p)
    from webrtc.options import add_webrtc_args, webrtc_options  # noqa: PLC0415

    add_webrtc_args(p)
    from web.limits import add_limit_args  # noqa: PLC0415

    add_limit_args(p)
    add_common_args(p)
    ns = p.parse_args(argv)
    cfg = finish(p, ns, config_from(ns))
    cfg.robotics = robotics_options(ns, p, gps=ns.gps, web=(cfg.host, cfg.port))
    if cfg.extra["max_clients"] is not None:
        _check_max_clients(p, cfg.extra["max_clients"])
    # Imported here, not at the top: every spawned child re-imports this module, and
    # only the web child needs Flask.
    from web.app import web_options  # noqa: PLC0415

    try:
        cfg.webrtc = webrtc_options(ns)
    except ValueError as exc:
        p.error(str(exc))
    try:
        web_options(cfg)
    except ValueError as exc:
        p.error(str(exc))
    if cfg.record:
        from media.recorder import JpegRecorder  # noqa: PLC0415

        try:
            JpegRecorder.check_path(cfg.record)
        except (ValueError, RuntimeError) as exc:
            p.error(f"--record: {exc}")
    if cfg.snapshot_on_exit and not os.access(
            os.path.dirname(os.path.abspath(cfg.snapshot_on_exit)), os.W_OK):
        p.error(f"--snapshot-on-exit {cfg.snapshot_on_exit}: directory not writable")
    if cfg.display:
        from sinks.display import display_problem  # noqa: PLC0415

        problem = display_problem()
        if problem:
            p.error(problem)
    return cfg


def _check_max_clients(p: OneLineParser, wanted: int) -> None:
    """--max-clients must fit in the open-files limit the web process can raise itself to."""
    import resource  # noqa: PLC0415

    from web.limits import max_clients_allowed  # noqa: PLC0415

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and wanted > max_clients_allowed(hard):
        p.error(f"--max-clients {wanted}: the open-files limit ({hard}) allows at most "
                f"{max_clients_allowed(hard)} (raise it with ulimit -n or LimitNOFILE=)")


def main(argv: list[str] | None = None) -> int:
    """Parse options, build the pipeline, supervise it until Ctrl-C or SIGTERM."""
    cfg = parse_args(argv)
    setup_logging(cfg.log_level)
    multiprocessing.current_process().name = "main"
    from web.app import web_options  # noqa: PLC0415
    from wiring.launch import run_pipeline  # noqa: PLC0415

    opts = web_options(cfg)
    if not opts.auth.enabled and not _loopback(cfg.host):
        log.warning("no --auth/--token and listening on %s: anyone who can reach this "
                    "port can watch", cfg.host)

    try:
        return run_pipeline(cfg)
    except CannotStart as exc:
        log.error("%s", exc)
        return exc.code


def _loopback(host: str) -> bool:
    import ipaddress  # noqa: PLC0415

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
