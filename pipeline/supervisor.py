"""The supervisor: owns the shared memory, starts the children, restarts the ones that die.

Modelled on gunicorn's arbiter: signal handlers only note the signal and wake the loop
through a self-pipe; the loop waits on the children's sentinels with a timeout, reaps,
restarts with backoff, and kills a child whose heartbeat stops. Shutdown escalates from
SIGTERM to SIGKILL within a bounded time, and the segments are unlinked in a `finally`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from pipeline.child import EXIT_CANNOT_START, NO_RESTART_CODES, CannotStart, Handles, enter
from pipeline.config import Config
from pipeline.control import STREAMS, Control
from pipeline.shm import FrameRing, cleanup_stale_segments, segment_name

log = logging.getLogger("supervisor")

RAW_SLOTS = 4
JPEG_SLOTS = 3
WIDE = ("combined", "metric")
"""Streams whose JPEG may be twice a color frame's: side by side, or 4:4:4 at quality 90+."""
IMU_SLOTS = 64
IMU_SLOT_BYTES = 8192
"""A batch of IMU samples per slot (about 390; a frame's worth is ~10); 64 batches are two
seconds at 30 frames a second for a reader that needs every sample."""
H264_SLOTS = 16
"""Half a second at 30 fps: how far a reader that needs every access unit (the push) may lag."""
HEARTBEAT_TIMEOUT_S = 10.0
STARTUP_GRACE_S = 20.0
KILL_WAIT_S = 2.0
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
STABLE_AFTER_S = 30.0
TERM_WAIT_S = 5.0
"""How long a stopping child may take before it is killed: on a loaded 2-core machine a
child closing its files (an MCAP summary, an MKV index) took over 2 s now and then."""
TICK_S = 0.5
"""The loop's longest wait between checks of its children."""


@dataclass
class ChildSpec:
    """How to start one child: its name, its `main(child, *args)`, and what it receives.

    A child gets the pipeline settings, the handles and its own `args` (its options),
    nothing else. With `heartbeat` the supervisor watches `hb_<name>` (`Child.beat()`).
    """

    name: str
    main: Callable[..., None]
    cfg: Config
    handles: Handles
    args: tuple[Any, ...] = ()
    heartbeat: bool = True
    stop_handlers: bool = True  # False: the child installs its own (gevent's)
    # How long its heartbeat may be stale before it counts as hung, and how long after a
    # start that rule waits (a child that has never beaten is never taken for hung).
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S
    grace: float = STARTUP_GRACE_S
    camera: str = ""  # a further camera's name: its process is called name[camera]
    proc: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    restart_at: float | None = None

    @property
    def label(self) -> str:
        """The process's name, as the log shows it."""
        return f"{self.name}[{self.camera}]" if self.camera else self.name

    @property
    def heartbeat_key(self) -> str | None:
        """The control field this child's heartbeat goes to, if it is watched."""
        return f"hb_{self.name}" if self.heartbeat else None


class Resources:
    """Shared-memory segments and wake-up pipes for one run, unlinked on close."""

    def __init__(self, raw_capacity: int, *, h264: bool = False, depth_video: bool = False,
                 readers: tuple[str, ...] = (), prefix: str = "",
                 dormant: bool = False) -> None:
        """`readers`: sink children that read both rings, each woken through its own pipe;
        `h264`, `depth_video`: the rings (and pipes) of those stages; `prefix`: put before
        every segment's role, so each camera of a run has segments of its own; `dormant`:
        a camera that may come later (hot-plug): its control block and pipes now, its
        rings at `wake()`."""
        cleanup_stale_segments()
        pid = os.getpid()
        self.control = Control.create(segment_name(pid, f"{prefix}control"))
        self.rings: list[FrameRing] = []
        pixels = raw_capacity // 5  # a raw slot holds BGR (3 B) + depth (2 B) per pixel
        # (name, slots, bytes per slot) of every ring, by role
        self.plan: dict[str, tuple[str, int, int]] = {
            "raw": (segment_name(pid, f"{prefix}raw"), RAW_SLOTS, raw_capacity),
            **{f"jpeg-{s}": (segment_name(pid, f"{prefix}jpeg-{s}"), JPEG_SLOTS,
                             max(pixels * 3 // 2 * (2 if s in WIDE else 1), 1 << 18))
               for s in STREAMS},
            # One access unit per slot; an IDR stays far below one byte per pixel.
            **({"h264": (segment_name(pid, f"{prefix}h264"), H264_SLOTS, max(pixels, 1 << 18))}
               if h264 else {}),
            "imu": (segment_name(pid, f"{prefix}imu"), IMU_SLOTS, IMU_SLOT_BYTES),
            # 10-bit depth at a constant quality under a cap: far below a byte per pixel.
            **({"depthvideo": (segment_name(pid, f"{prefix}depthvideo"), H264_SLOTS,
                               max(pixels, 1 << 18))} if depth_video else {}),
        }
        if not dormant:
            self.wake()
        ctx = multiprocessing.get_context("spawn")
        raw_r, raw_w = ctx.Pipe(duplex=False)
        jpeg_r, jpeg_w = ctx.Pipe(duplex=False)
        tap_r, tap_w = ctx.Pipe(duplex=False)
        readers = (*readers, *(("h264",) if h264 else ()),
                   *(("depthvideo",) if depth_video else ()))
        sink_wakes = {name: ctx.Pipe(duplex=False) for name in readers}
        h264_r, h264_w = ctx.Pipe(duplex=False) if h264 else (None, None)
        dv_r, dv_w = ctx.Pipe(duplex=False) if depth_video else (None, None)
        self.pipes = (raw_r, raw_w, jpeg_r, jpeg_w, tap_r, tap_w,
                      *((h264_r, h264_w) if h264 else ()),
                      *((dv_r, dv_w) if depth_video else ()),
                      *(end for pair in sink_wakes.values() for end in pair))
        names = {role: name for role, (name, _, _) in self.plan.items()}
        self.handles = Handles(
            control=self.control.name, raw=names["raw"],
            jpeg={s: names[f"jpeg-{s}"] for s in STREAMS},
            raw_wake_r=raw_r, raw_wake_w=raw_w, jpeg_wake_r=jpeg_r, jpeg_wake_w=jpeg_w,
            tap_wake_r=tap_r, tap_wake_w=tap_w,
            parent_pid=pid, sink_wakes=sink_wakes, h264=names.get("h264", ""),
            h264_wake_r=h264_r, h264_wake_w=h264_w, imu=names["imu"],
            depth_video=names.get("depthvideo", ""),
            depth_video_wake_r=dv_r, depth_video_wake_w=dv_w,
        )

    def wake(self) -> None:
        """Create the rings (at once, or when a dormant camera comes)."""
        if self.rings:
            return
        try:
            for name, slots, capacity in self.plan.values():
                self.rings.append(FrameRing.create(name, slots, capacity))
        except BaseException:
            self.close()
            raise

    @property
    def awake(self) -> bool:
        """True once the rings exist."""
        return bool(self.rings)

    def close(self) -> None:
        """Unlink every segment this run created (idempotent)."""
        for ring in self.rings:
            ring.close()
        self.rings = []
        if self.control is not None:
            self.control.close()
            self.control = None  # type: ignore[assignment]
        for conn in getattr(self, "pipes", ()):
            conn.close()
        self.pipes = ()


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind the web port in the supervisor so web restarts never refuse connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server(
            (host, port), family=family, backlog=1024, reuse_port=False,
            dualstack_ipv6=family == socket.AF_INET6 and host in ("::", ""),
        )
    except OSError as exc:
        raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Start, watch, restart and finally stop the children of one run."""

    def __init__(self, control: Control, children: list[ChildSpec],
                 controls: tuple[Control, ...] = (),
                 on_tick: Callable[[], list[ChildSpec]] | None = None) -> None:
        """`control`: the run's control block; `controls`: those of further cameras, whose
        children's heartbeats, pids and restarts go to their own block; `on_tick`: asked
        at every turn of the loop for children to add to the run (a camera plugged in)."""
        self.on_tick = on_tick
        self.control = control
        self.controls = {c.name: c for c in (control, *controls)}
        self.children = children
        self.ctx = multiprocessing.get_context("spawn")
        self._stop_signal: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.exit_code = 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop_signal = signum
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass

    def _control(self, child: ChildSpec) -> Control:
        return self.controls.get(child.handles.control, self.control)

    def _start(self, child: ChildSpec) -> None:
        control = self._control(child)
        if child.heartbeat_key:
            control[child.heartbeat_key] = 0.0
        proc = self.ctx.Process(
            target=enter, name=child.label,
            args=(child.name, child.main, child.cfg, child.handles, child.args),
            kwargs={"stop_handlers": child.stop_handlers})
        proc.start()
        child.proc = proc
        try:
            control[f"pid_{child.name}"] = proc.pid or 0
        except KeyError:
            pass
        child.started = time.monotonic()
        child.restart_at = None
        log.debug("started %s (pid %d)", child.label, proc.pid)

    def run(self) -> int:
        """Supervise until a signal or a fatal child exit; return the exit code."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                self._start(child)
            self._loop()
        finally:
            self.shutdown()
            for s, h in old.items():
                signal.signal(s, h)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.exit_code

    def _loop(self) -> None:
        while self._stop_signal is None:
            sentinels = [c.proc.sentinel for c in self.children if c.proc is not None]
            wait([*sentinels, self._wake_r], timeout=TICK_S)
            if self._stop_signal is not None:
                log.info("received %s, shutting down", signal.Signals(self._stop_signal).name)
                return
            now = time.monotonic()
            for child in self.children:
                if child.proc is not None and not child.proc.is_alive():
                    if not self._reap(child, now):
                        return
                elif child.proc is not None:
                    self._check_heartbeat(child, now)
                if child.proc is None and child.restart_at is not None and now >= child.restart_at:
                    self._control(child).add(f"restarts_{child.name}")
                    self._start(child)
            if self.on_tick is not None:
                for child in self.on_tick():
                    self.children.append(child)
                    self._start(child)

    def _reap(self, child: ChildSpec, now: float) -> bool:
        """Handle a dead child; False when the whole run must stop."""
        assert child.proc is not None
        code = child.proc.exitcode
        child.proc.join(0)
        child.proc.close()
        child.proc = None
        if code in NO_RESTART_CODES:
            log.debug("%s cannot start (exit %s); stopping", child.label, code)
            self.exit_code = code or EXIT_CANNOT_START
            return False
        if now - child.started > STABLE_AFTER_S:
            child.backoff = BACKOFF_FIRST_S
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        log.warning("%s process died (%s); restarting in %.1f s", child.label, how,
                    child.backoff)
        child.restart_at = now + child.backoff
        child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
        return True

    def _check_heartbeat(self, child: ChildSpec, now: float) -> None:
        if not child.heartbeat_key or now - child.started < child.grace:
            return
        beat = self._control(child)[child.heartbeat_key]
        if beat and time.time() - beat > child.heartbeat_timeout:
            log.warning("%s process stopped responding for %.0f s; killing it", child.label,
                        time.time() - beat)
            assert child.proc is not None
            child.proc.kill()
            # Until it is reaped its sentinel may fire while it still counts as alive: wait
            # (SIGKILL is prompt) rather than warn and kill again on every turn of the loop.
            child.proc.join(KILL_WAIT_S)

    def shutdown(self) -> None:
        """SIGTERM every child, wait a bounded time, SIGKILL the rest."""
        alive = [c.proc for c in self.children if c.proc is not None and c.proc.is_alive()]
        for proc in alive:
            try:
                proc.terminate()
            except OSError:
                pass
        deadline = time.monotonic() + TERM_WAIT_S
        for proc in alive:
            proc.join(max(deadline - time.monotonic(), 0))
        for proc in alive:
            if proc.is_alive():
                log.warning("%s did not stop in %.0f s; killing it", proc.name, TERM_WAIT_S)
                proc.kill()
                proc.join(1.0)
        for child in self.children:
            if child.proc is not None:
                child.proc.close()
                child.proc = None
