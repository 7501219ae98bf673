"""What every child process does first: log set-up, parent-death signal, stop flag.

Children are started with the spawn method and get all their state as arguments. A
signal only sets the stop flag; the child's loop notices it at its next wake-up.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG = 2  # bad configuration: restarting cannot help
EXIT_CANNOT_START = 3  # the environment refuses (port taken, device busy): do not restart
NO_RESTART_CODES = (EXIT_CONFIG, EXIT_CANNOT_START)

_PR_SET_PDEATHSIG = 1
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


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set the stop flag (Ctrl-C reaches the whole process group)."""

    def handler(signum: int, frame: object) -> None:
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


def run_child(role: str, level: str, parent_pid: int, body: Callable[[], None]) -> None:
    """Run a child's body and turn its ending into the exit code the supervisor reads."""
    setup_logging(level)
    die_with_parent(parent_pid)
    log = logging.getLogger(role)
    try:
        body()
    except CannotStart as exc:
        log.error("%s", exc)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)
    sys.exit(EXIT_OK)
