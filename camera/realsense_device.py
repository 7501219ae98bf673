"""Intel RealSense devices: the modes and filters a D455 takes, discovery, bounded calls.

What the live camera (camera/realsense.py), the recordings (camera/recording.py) and the
command-line checks (wiring/options.py) share about librealsense itself. pyrealsense2 is
optional: without it this module still imports (`rs` is None), `realsense_devices()`
returns [] (so `--source auto` falls back) and opening a source is a configuration error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from camera.base import SourceConfigError, SourceError

try:
    import pyrealsense2 as rs
except ImportError:  # e.g. ARM installs without the wheel
    rs = None

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Color + depth modes the D455 offers for both streams: (width, height, fps).
D455_MODES: tuple[tuple[int, int, int], ...] = tuple(
    (w, h, fps) for (w, h) in ((1280, 720), (848, 480), (640, 480)) for fps in (5, 15, 30)
)

#: Post-processing filters by name, in the order librealsense recommends applying them.
FILTER_ORDER: tuple[str, ...] = ("decimation", "threshold", "spatial", "temporal",
                                 "hole_filling")

CLOCK_TOLERANCE = 5.0  # s a device timestamp may differ from time.time() to be trusted
START_TIMEOUT = 6.0    # s; the supervisor kills a capture process silent for 10 s
STOP_TIMEOUT = 3.0     # s


def _modes_text() -> str:
    sizes = dict.fromkeys(f"{w}x{h}" for w, h, _ in D455_MODES)
    rates = sorted({fps for _, _, fps in D455_MODES})
    return f"{', '.join(sizes)} at {'/'.join(map(str, rates))} fps"


def validate_mode(width: int, height: int, fps: float) -> None:
    """Raise SourceConfigError unless (width, height, fps) is a D455 color+depth mode."""
    if (width, height, fps) not in D455_MODES:
        raise SourceConfigError(
            f"RealSense D455 cannot stream color+depth at {width}x{height}@{fps:g}; "
            f"valid modes: {_modes_text()}")


def normalize_filters(names: Iterable[str]) -> tuple[str, ...]:
    """Check filter names ('-' or '_') and return them in librealsense's recommended order."""
    wanted = set()
    for name in names:
        key = name.strip().lower().replace("-", "_")
        if key not in FILTER_ORDER:
            raise SourceConfigError(
                f"unknown RealSense filter {name!r}; known: {', '.join(FILTER_ORDER)}")
        wanted.add(key)
    return tuple(n for n in FILTER_ORDER if n in wanted)


def require_rs() -> None:
    if rs is None:
        raise SourceConfigError("pyrealsense2 is not installed (pip install pyrealsense2 on "
                                "x86_64; build librealsense with Python bindings elsewhere)")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def bounded(fn: Callable[[], T], timeout: float, what: str,
             on_late: Callable[[T], None] | None = None) -> T:
    """Run a librealsense call that may block, giving up after `timeout` seconds.

    A call that finishes after we gave up has its result handed to `on_late` (to stop a
    pipeline nobody will use). Exceptions from `fn` propagate; a timeout is a SourceError.
    """
    box: dict[str, Any] = {}
    abandoned = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
            return
        if abandoned.is_set() and on_late is not None:
            try:
                on_late(box["value"])
            except Exception as exc:
                log.debug("cleaning up after a late %s: %s", what, exc)

    worker = threading.Thread(target=run, name=f"rs-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        abandoned.set()
        raise SourceError(f"{what} did not finish within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def device_info(dev: Any) -> dict[str, str]:
    """serial, name, firmware, usb_type, product_line of a device, where it reports them."""
    keys = {
        "serial": "serial_number", "name": "name", "firmware": "firmware_version",
        "usb_type": "usb_type_descriptor", "product_line": "product_line",
    }
    out: dict[str, str] = {}
    for key, attr in keys.items():
        info = getattr(rs.camera_info, attr)
        try:
            if dev.supports(info):
                out[key] = dev.get_info(info)
        except RuntimeError:
            continue
    return out


def realsense_devices() -> list[dict[str, str]]:
    """Attached RealSense devices (serial, name, firmware, usb_type); [] if none or no library."""
    if rs is None:
        return []
    try:
        return [device_info(d) for d in rs.context().query_devices()]
    except RuntimeError as exc:
        log.debug("querying RealSense devices: %s", exc)
        return []


def start_pipeline(pipe: Any, cfg: Any, what: str,
                   callback: Callable[[Any], None] | None = None) -> Any:
    """`pipe.start(cfg)` (with `callback`, if given: frames go to it rather than to a
    queue) within START_TIMEOUT (its profile); one that starts later is stopped."""
    start = (lambda: pipe.start(cfg)) if callback is None else (lambda: pipe.start(cfg, callback))
    return bounded(start, START_TIMEOUT, what, on_late=lambda _p: pipe.stop())


def stop_pipeline(pipe: Any, what: str, warning: str) -> None:
    """`pipe.stop()` within STOP_TIMEOUT; a failure or a timeout is logged as `warning`."""
    try:
        bounded(pipe.stop, STOP_TIMEOUT, what)
    except (RuntimeError, SourceError) as exc:
        log.warning("%s: %s", warning, one_line(exc))


SYNC_MODES = {"default": 0, "master": 1, "slave": 2, "full-slave": 3, "genlock": 4}
"""--sync values and the inter_cam_sync_mode each sets (4: genlock, one frame per trigger)."""


def apply_sync(dev: Any, mode: str) -> str:
    """Set the device's inter_cam_sync_mode to `mode` (before streaming starts, as
    librealsense asks) and return the one line to log, whether it could or not."""
    serial = device_info(dev).get("serial", "?")
    value = SYNC_MODES[mode]
    for sensor in dev.query_sensors():
        try:
            if not sensor.supports(rs.option.inter_cam_sync_mode):
                continue
            sensor.set_option(rs.option.inter_cam_sync_mode, value)
            got = int(sensor.get_option(rs.option.inter_cam_sync_mode))
        except RuntimeError as exc:
            return f"RealSense {serial}: cannot set --sync {mode}: {one_line(exc)}"
        return f"RealSense {serial}: inter-camera sync {mode} (inter_cam_sync_mode {got})"
    return f"RealSense {serial}: has no inter_cam_sync_mode; --sync {mode} ignored"


def depth_scale(dev: Any) -> float:
    """Metres per depth unit of a device; 0.001 (a D455's) when it cannot tell."""
    try:
        return dev.first_depth_sensor().get_depth_scale()
    except RuntimeError:
        return 0.001
