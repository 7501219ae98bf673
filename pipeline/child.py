"""The child skeleton: what every child process does around its own work.

Children are started with the spawn method and get all their state as arguments: the
pipeline settings, their handles and their own options. `enter` (gunicorn's `Worker` in
spirit) sets up logging, the parent-death signal, the stop flag and the control block,
runs the child's `main(child, *args)` and turns its ending into the exit code the
supervisor reads. A signal only sets the stop flag; the loop notices it at its next
wake-up. `Child.beat()` writes the heartbeat the supervisor watches, keyed by the name.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from pipeline.control import Control

if TYPE_CHECKING:
    from pipeline.config import Config

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG = 2  # bad configuration: restarting cannot help
EXIT_CANNOT_START = 3  # the environment refuses (port taken, device busy): do not restart
NO_RESTART_CODES = (EXIT_CONFIG, EXIT_CANNOT_START)

_PR_SET_PDEATHSIG = 1
OWN_STOP_DEADLINE_S = 6.0
"""Seconds a child may spend stopping before the kernel ends it (SIGALRM): past the
supervisor's own wait before it kills (so a supervised child is killed and logged there
first), and the only bound an orphan has, since nobody is left to kill it."""
LOG_FORMAT = "%(asctime)s %(processName)-8s %(levelname)-7s %(message)s"


class CannotStart(Exception):
    """Raised by a child that can never start with this configuration or environment."""

    def __init__(self, message: str, code: int = EXIT_CANNOT_START) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Handles:
    """Names of the shared segments and the wake-up pipes, handed to every child."""

    control: str
    raw: str
    jpeg: dict[str, str]
    raw_wake_r: Connection
    raw_wake_w: Connection
    jpeg_wake_r: Connection
    jpeg_wake_w: Connection
    tap_wake_r: Connection
    tap_wake_w: Connection
    parent_pid: int
    # (reader, writer) per sink child that reads both rings; capture and encoder wake them all
    sink_wakes: dict[str, tuple[Connection, Connection]] = field(default_factory=dict)
    h264: str = ""  # the H.264 ring, when a stage fills one (woken through sink_wakes["h264"])
    # the H.264 stage wakes readers of its ring (the push) after each access unit
    h264_wake_r: Connection | None = None
    h264_wake_w: Connection | None = None
    imu: str = ""  # the IMU ring: batches of motion samples (media/imu.py), written by capture
    # the depth-video ring (one access unit per slot) and the pipe its stage wakes the web by
    depth_video: str = ""
    depth_video_wake_r: Connection | None = None
    depth_video_wake_w: Connection | None = None


def setup_logging(level: str) -> None:
    """Log lines to stderr with the process name, as every process of the server does."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    # urllib3 logs request paths with their query strings at debug level, which would put
    # a ?token= from a -g URL into the log; it never goes below info.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger().level))


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGTERM us when the supervisor dies (Linux), and check it is alive."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(EXIT_OK)


def arm_stop_deadline() -> None:
    """Have the kernel end this process OWN_STOP_DEADLINE_S from the first stop request,
    whether or not its own stop finishes; a later request leaves the deadline as it is."""
    if signal.getitimer(signal.ITIMER_REAL)[0] == 0.0:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, OWN_STOP_DEADLINE_S)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set the stop flag (Ctrl-C reaches the whole process group) and arm
    the stop deadline."""

    def handler(signum: int, frame: object) -> None:
        arm_stop_deadline()
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def set_nonblocking_writer(conn: Connection) -> None:
    """A wake-up pipe's writer must never block on a reader that is gone or slow."""
    os.set_blocking(conn.fileno(), False)


def wake(conn: Connection) -> None:
    """Write one wake-up byte; a full pipe already means 'wake up', so that is fine."""
    try:
        os.write(conn.fileno(), b"\x01")
    except (BlockingIOError, BrokenPipeError):
        pass


def drain(conn: Connection) -> None:
    """Empty a wake-up pipe without blocking."""
    fd = conn.fileno()
    os.set_blocking(fd, False)
    try:
        while len(os.read(fd, 4096)) == 4096:
            pass
    except BlockingIOError:
        pass


class Child:
    """A running child's own view: its name, the pipeline settings, handles, control block,
    stop flag and heartbeat."""

    def __init__(self, name: str, cfg: Config, handles: Handles) -> None:
        self.name = name
        self.cfg = cfg
        self.handles = handles
        self.stop = threading.Event()
        self.log = logging.getLogger(name)
        self.control = Control.attach(handles.control)
        self.heartbeat_key = f"hb_{name}"

    def beat(self) -> None:
        """Tell the supervisor this child is alive (it kills one that stops beating)."""
        self.control[self.heartbeat_key] = time.time()


def enter(name: str, main: Callable[..., None], cfg: Config, handles: Handles,
          args: tuple[Any, ...], *, stop_handlers: bool = True) -> None:
    """Process target of every child: set up, run `main(child, *args)`, exit with its code.

    `stop_handlers=False` leaves SIGTERM/SIGINT to a child with its own event loop (the
    web process's gevent handlers), which then sets `child.stop` itself.
    """
    setup_logging(cfg.log_level)
    die_with_parent(handles.parent_pid)
    log = logging.getLogger(name)
    try:
        child = Child(name, cfg, handles)
        if stop_handlers:
            install_stop_handlers(child.stop)
        main(child, *args)
    except CannotStart as exc:
        log.error("%s", exc)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)
    sys.exit(EXIT_OK)
