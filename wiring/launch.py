"""Assemble one run from its plan: resources, then every child with what it needs."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from dataclasses import replace

from camera.capture import capture_main
from camera.factory import raw_capacity
from camera.hotplug import DeviceWatcher
from encoder.depth_video_stage import depth_video_main
from encoder.h264_stage import h264_main
from encoder.process import encoder_main
from media.jpeg import pick_backend
from pipeline.args import check_listen
from pipeline.child import CannotStart, Handles
from pipeline.config import Config
from pipeline.supervisor import ChildSpec, Resources, Supervisor, bind_listener
from push.gps.main import gps_main
from push.main import push_main
from robotics.live import foxglove_main
from robotics.record import mcap_main
from sinks.display import HUNG_AFTER_S, display_main
from sinks.tap import tap_main
from web.cameras import Rig
from web.server import web_main
from webrtc.janus import janus_main
from webrtc.options import allocate, janus_problem
from wiring.hotplug import HotPlug
from wiring.plan import Plan

log = logging.getLogger("supervisor")

BACKEND_NAMES = {"turbojpeg": "libjpeg-turbo (PyTurboJPEG)", "opencv": "OpenCV"}


def camera_children(plan: Plan, cfg: Config, h: Handles, backend: str,
                    camera: str = "") -> list[ChildSpec]:
    """A further camera's own children: capture, JPEG encoder and depth-video stage."""
    specs = [ChildSpec("capture", capture_main, cfg, h, camera=camera),
             ChildSpec("encoder", encoder_main, cfg, h, (backend,), camera=camera)]
    if plan.depth_video is not None:
        specs.append(ChildSpec("depthvideo", depth_video_main, cfg, h, (plan.depth_video,),
                               camera=camera))
    return specs


def child_specs(plan: Plan, h: Handles, backend: str,
                listener: socket.socket | None = None,
                more: tuple[Handles, ...] = (), *,
                spares: tuple[tuple[object, object], ...] = ()) -> list[ChildSpec]:
    """Every child of the run, each with the pipeline settings, its handles and its own
    options: a credential goes only to the child that uses it (web, push, GPS, Janus).
    `more`: the handles of each further camera, which gets a capture, an encoder and a
    depth-video stage of its own; the one web process serves every camera, and the
    `spares` (settings, handles) of cameras that may be plugged in later."""
    cfg = plan.pipeline
    specs = [ChildSpec("capture", capture_main, cfg, h),
             ChildSpec("encoder", encoder_main, cfg, h, (backend,))]
    sizes = tuple((c.pipeline.width, c.pipeline.height) for c in plan.cameras)
    for i, (cam, ch) in enumerate(zip(plan.more_cameras, more, strict=True), start=1):
        specs += camera_children(plan, cam.pipeline, ch, backend, cam.name)
        mount = plan.webrtc.for_camera(cam.name) if plan.webrtc is not None else None
        if plan.h264 is not None:  # for its mountpoint on our Janus, or /NAME/h264
            specs.append(ChildSpec("h264", h264_main, cam.pipeline, ch,
                                   (plan.h264, mount.rtp_target if mount else None),
                                   camera=cam.name))
        if cam.tap is not None and cam.tap.enabled:
            specs.append(ChildSpec("tap", tap_main, cam.pipeline, ch, (cam.tap,),
                                   camera=cam.name))
        if plan.display:  # a window per camera, titled with its name
            specs.append(ChildSpec("display", display_main, cam.pipeline, ch,
                                   (cam.name, i, sizes),
                                   grace=0.0, heartbeat_timeout=HUNG_AFTER_S,
                                   camera=cam.name))
    if plan.web is not None:
        web = replace(plan.web, webrtc=plan.webrtc, h264=plan.h264)
        cameras = tuple((c.name, c.pipeline, ch)
                        for c, ch in zip(plan.cameras, (h, *more), strict=True))
        specs.append(ChildSpec("web", web_main, cfg, h,
                               (web, listener, backend, Rig(cameras, spares)),  # type: ignore[arg-type]
                               stop_handlers=False))
    if plan.tap is not None and plan.tap.enabled:
        specs.append(ChildSpec("tap", tap_main, cfg, h, (plan.tap,)))
    if plan.display:
        specs.append(ChildSpec("display", display_main, cfg, h,
                               (plan.name if plan.more_cameras else "", 0, sizes), grace=0.0,
                               heartbeat_timeout=HUNG_AFTER_S))
    if plan.h264 is not None:
        target = plan.webrtc.rtp_target if plan.webrtc is not None else None
        specs.append(ChildSpec("h264", h264_main, cfg, h, (plan.h264, target)))
    if plan.depth_video is not None:
        specs.append(ChildSpec("depthvideo", depth_video_main, cfg, h, (plan.depth_video,)))
    if plan.webrtc is not None:
        mounted = {m.camera for m in plan.webrtc.mounts}
        controls = tuple(ch.control for c, ch in zip(plan.more_cameras, more, strict=True)
                         if c.name in mounted)
        specs.append(ChildSpec("janus", janus_main, cfg, h, (plan.webrtc, controls)))
    if plan.push is not None:
        specs.append(ChildSpec("push", push_main, cfg, h, (plan.push,)))
    if plan.gps is not None:
        specs.append(ChildSpec("gps", gps_main, cfg, h, (plan.gps,), heartbeat=False))
    robotics = plan.robotics
    # Every camera to one server and one file, each camera under its own topics.
    others = tuple((c.name, c.pipeline, ch) for c, ch in zip(plan.more_cameras, more,
                                                              strict=True))
    later = tuple(handles for _, handles in spares)
    if robotics is not None and robotics.foxglove_host is not None:
        specs.append(ChildSpec("foxglove", foxglove_main, cfg, h,
                               (robotics, plan.name, others, later)))
    if robotics is not None and robotics.record_mcap:
        specs.append(ChildSpec("mcap", mcap_main, cfg, h,
                               (robotics, plan.name, others, later)))
    return specs


def run_pipeline(plan: Plan, *, watcher: DeviceWatcher | None = None) -> int:
    """Run the plan's children under a supervisor; returns the exit code. `watcher`: what
    says which cameras were plugged in (default: librealsense's device list)."""
    cfg = plan.pipeline
    backend = pick_backend(cfg.encoder)
    log.info("JPEG encoder: %s", BACKEND_NAMES[backend])
    robotics = plan.robotics
    if robotics is not None and robotics.foxglove_host is not None:
        problem = check_listen(robotics.foxglove_host, robotics.foxglove_port)
        if problem:
            raise CannotStart(f"--foxglove: {problem}")
    _remove_stale_workdirs()
    listener = None
    workdir = None
    res = None
    more: list[Resources] = []
    hot: HotPlug | None = None
    try:
        if plan.web is not None:
            listener = bind_listener(plan.web.host, plan.web.port)
        plan, workdir = _prepare_webrtc(plan)
        res = Resources(raw_capacity(cfg), h264=plan.h264 is not None,
                        depth_video=plan.depth_video is not None, readers=plan.readers)
        for i, cam in enumerate(plan.more_cameras, start=2):
            more.append(Resources(raw_capacity(cam.pipeline), readers=plan.readers,
                                  h264=plan.h264 is not None,
                                  depth_video=plan.depth_video is not None, prefix=f"c{i}."))
        if more:
            log.info("cameras: %s", ", ".join(f"{c.name} ({c.pipeline.source})"
                                               for c in plan.cameras))
        if plan.hotplug:
            hot = HotPlug(plan, lambda c, hs: camera_children(plan, c, hs, backend), watcher)
        specs = child_specs(plan, res.handles, backend, listener,
                            tuple(r.handles for r in more), spares=hot.spares if hot else ())
        controls = (*(r.control for r in more), *(hot.controls() if hot else ()))
        return Supervisor(res.control, specs, controls,  # type: ignore[arg-type]
                          on_tick=hot.on_tick if hot else None).run()
    finally:
        if listener is not None:
            listener.close()
        if hot is not None:
            hot.close()
        for r in more:
            r.close()
        if res is not None:
            res.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        _stop_resource_tracker()


def _prepare_webrtc(plan: Plan) -> tuple[Plan, str | None]:
    """Ports and a working directory for a private Janus; WebRTC off if Janus is missing."""
    opts = plan.webrtc
    if opts is None or not opts.private:
        return plan, None  # --janus URL: nothing of ours to run or configure
    problem = janus_problem(opts.janus_bin)
    if problem:
        log.error("WebRTC off: %s; serving MJPEG only", problem)
        robotics_h264 = plan.robotics is not None and plan.robotics.h264
        return replace(plan, webrtc=None, h264=plan.h264 if robotics_h264 else None), None
    workdir = os.path.join(tempfile.gettempdir(), f"rsmjpeg-{os.getpid()}-janus")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir, mode=0o700)
    more = tuple((c.name, c.pipeline.width, c.pipeline.height) for c in plan.more_cameras)
    return replace(plan, webrtc=allocate(opts, workdir, more)), workdir


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
