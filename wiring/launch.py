"""Assemble one run: resources, the capture and encoder children, and the sink child."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from camera.capture import capture_main
from camera.factory import raw_capacity
from encoder.process import encoder_main
from media.jpeg import pick_backend
from pipeline.child import CannotStart
from pipeline.config import Config
from pipeline.supervisor import ChildSpec, Resources, Supervisor, bind_listener
from robotics.options import check_listen

log = logging.getLogger("supervisor")

BACKEND_NAMES = {"turbojpeg": "libjpeg-turbo (PyTurboJPEG)", "opencv": "OpenCV"}


def run_pipeline(cfg: Config,
                 sink: Callable[[Config, Any, str], list[ChildSpec]] | None = None, *,
                 sink_reads_h264: bool = False) -> int:
    """Run capture → encoder → sink under a supervisor; returns the exit code.

    `sink_reads_h264`: the sink reads the H.264 ring (its children include the stage).
    """
    backend = pick_backend(cfg.encoder)
    log.info("JPEG encoder: %s", BACKEND_NAMES[backend])
    robotics = cfg.robotics
    if robotics is not None and robotics.foxglove_host is not None:
        problem = check_listen(robotics.foxglove_host, robotics.foxglove_port)
        if problem:
            raise CannotStart(f"--foxglove: {problem}")
    _remove_stale_workdirs()
    listener = None
    workdir = None
    res = None
    try:
        if sink is None:
            listener = bind_listener(cfg.host, cfg.port)
            workdir = _prepare_webrtc(cfg)
        from webrtc.options import stage_options  # noqa: PLC0415

        stage = stage_options(cfg)
        res = Resources(cfg, raw_capacity(cfg), h264=stage is not None or sink_reads_h264)
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
                from sinks.tap import tap_main  # noqa: PLC0415

                children.append(ChildSpec("tap", tap_main, (cfg, h), heartbeat="hb_tap"))
            if cfg.display:
                from sinks.display import HUNG_AFTER_S, display_main  # noqa: PLC0415

                children.append(ChildSpec("display", display_main, (cfg, h),
                                          heartbeat="hb_display", grace=0.0,
                                          heartbeat_timeout=HUNG_AFTER_S))
            if cfg.webrtc is not None:
                from encoder.h264_stage import h264_main  # noqa: PLC0415
                from webrtc.janus import janus_main  # noqa: PLC0415

                children += [
                    ChildSpec("h264", h264_main, (cfg, h, cfg.webrtc), heartbeat="hb_h264"),
                    ChildSpec("janus", janus_main, (cfg, h, cfg.webrtc), heartbeat="hb_janus"),
                ]
        else:
            children.extend(sink(cfg, h, backend))
        if stage is not None and cfg.webrtc is None and not sink_reads_h264:
            # No WebRTC: the stage runs for /camera/h264 alone, idle until a sink subscribes.
            # (A push of H.264 brings its own stage, which the robotics sinks share.)
            from encoder.h264_stage import h264_main  # noqa: PLC0415

            children.append(ChildSpec("h264", h264_main, (cfg, h, stage), heartbeat="hb_h264"))
        if robotics is not None and robotics.enabled:
            from robotics.sink import robotics_children  # noqa: PLC0415

            children.extend(robotics_children(cfg, h, robotics))
        return Supervisor(res.control, children).run()
    finally:
        if listener is not None:
            listener.close()
        if res is not None:
            res.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        _stop_resource_tracker()


def _prepare_webrtc(cfg: Config) -> str | None:
    """Ports and a working directory for a private Janus; WebRTC off if Janus is missing."""
    if cfg.webrtc is None:
        return None
    from dataclasses import replace  # noqa: PLC0415

    from webrtc.options import allocate, janus_problem  # noqa: PLC0415

    if cfg.webrtc.private:
        problem = janus_problem(cfg.webrtc.janus_bin)
        if problem:
            log.error("WebRTC off: %s; serving MJPEG only", problem)
            cfg.webrtc = None
            return None
    else:
        return None  # --janus URL: nothing of ours to run or configure
    workdir = os.path.join(tempfile.gettempdir(), f"rsmjpeg-{os.getpid()}-janus")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir, mode=0o700)
    cfg.webrtc = replace(allocate(cfg.webrtc, workdir), workdir=workdir)
    return workdir


def _remove_stale_workdirs() -> None:
    """Remove the working directories of runs that were SIGKILLed (their pid is gone)."""
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        m = re.fullmatch(r"rsmjpeg-(\d+)-\w+", entry)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)


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
