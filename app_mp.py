"""Serve a depth camera's color and depth streams as MJPEG over HTTP.

Three processes under one supervisor: capture (camera or synthetic scene) into shared
memory, JPEG encoding, and a Flask/gevent web server fanning each frame out to every
client. Run `python3 app_mp.py --help` for the options.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys

from pipeline.child import CannotStart, setup_logging
from pipeline.config import (
    Config,
    OneLineParser,
    add_common_args,
    add_encoder_args,
    add_source_args,
    config_from,
    finish,
)

log = logging.getLogger("app_mp")


def parse_args(argv: list[str] | None = None) -> Config:
    """Command line -> Config (one-line error and exit code 2 on bad values)."""
    from pipeline.config import _host, _port  # noqa: PLC0415

    p = OneLineParser(
        prog="app_mp.py",
        description="Stream a RealSense D455 (or the built-in synthetic scene) as MJPEG: "
        "/ (page), /color, /depth, /combined (multipart), /color.jpg etc. (snapshots), "
        "/status (JSON).",
    )
    add_source_args(p)
    add_encoder_args(p)
    g = p.add_argument_group("web server")
    g.add_argument("--host", type=_host, default="0.0.0.0",
                   help="address to listen on (default 0.0.0.0, all IPv4 interfaces)")
    g.add_argument("--port", type=_port, default=5000, help="TCP port (default 5000)")
    add_common_args(p)
    ns = p.parse_args(argv)
    return finish(p, ns, config_from(ns, sink="web"))


def main(argv: list[str] | None = None) -> int:
    """Parse options, build the pipeline, supervise it until Ctrl-C or SIGTERM."""
    cfg = parse_args(argv)
    setup_logging(cfg.log_level)
    multiprocessing.current_process().name = "main"
    from pipeline.launch import run_pipeline  # noqa: PLC0415

    try:
        return run_pipeline(cfg)
    except CannotStart as exc:
        log.error("%s", exc)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
