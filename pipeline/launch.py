"""Assemble one run: resources, the capture and encoder children, and the sink child."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from camera.capture import capture_main
from camera.factory import raw_capacity
from encoder.codec import pick_backend
from encoder.process import encoder_main
from pipeline.child import CannotStart
from pipeline.config import Config
from pipeline.supervisor import ChildSpec, Resources, Supervisor, bind_listener
from robotics.options import check_listen

log = logging.getLogger("supervisor")

BACKEND_NAMES = {"turbojpeg": "libjpeg-turbo (PyTurboJPEG)", "opencv": "OpenCV"}


def run_pipeline(cfg: Config,
                 sink: Callable[[Config, Any, str], list[ChildSpec]] | None = None) -> int:
    """Run capture → encoder → sink under a supervisor; returns the exit code."""
    backend = pick_backend(cfg.encoder)
    log.info("JPEG encoder: %s", BACKEND_NAMES[backend])
    robotics = cfg.robotics
    if robotics is not None and robotics.foxglove_host is not None:
        problem = check_listen(robotics.foxglove_host, robotics.foxglove_port)
        if problem:
            raise CannotStart(f"--foxglove: {problem}")
    listener = None
    if sink is None:
        listener = bind_listener(cfg.host, cfg.port)
    res = Resources(cfg, raw_capacity(cfg))
    try:
        h = res.handles
        children = [
            ChildSpec("capture", capture_main, (cfg, h), heartbeat="hb_capture"),
            ChildSpec("encoder", encoder_main, (cfg, h, backend), heartbeat="hb_encoder"),
        ]
        if sink is None:
            from web.server import web_main  # noqa: PLC0415

            children.append(ChildSpec("web", web_main, (cfg, h, backend, listener,
                                                        cfg.extra.get("ssl_args")),
                                      heartbeat="hb_web"))
            if cfg.record or cfg.snapshot_on_exit:
                from pipeline.tap import tap_main  # noqa: PLC0415

                children.append(ChildSpec("tap", tap_main, (cfg, h), heartbeat="hb_tap"))
            if cfg.display:
                from pipeline.display import display_main  # noqa: PLC0415

                children.append(ChildSpec("display", display_main, (cfg, h),
                                          heartbeat="hb_display"))
        else:
            children.extend(sink(cfg, h, backend))
        if robotics is not None and robotics.enabled:
            from robotics.sink import robotics_children  # noqa: PLC0415

            children.extend(robotics_children(cfg, h, robotics))
        return Supervisor(res.control, children).run()
    finally:
        if listener is not None:
            listener.close()
        res.close()
        _stop_resource_tracker()


def _stop_resource_tracker() -> None:
    """Reap multiprocessing's resource-tracker helper so no process outlives this one."""
    from multiprocessing import resource_tracker  # noqa: PLC0415

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # noqa: SLF001
    if stop is None:
        return
    try:
        stop()
    except (OSError, ChildProcessError, AttributeError) as exc:
        log.debug("resource tracker: %s", exc)
