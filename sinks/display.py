"""The display child: an OpenCV window with the live color stream (and depth beside it).

It reads the color and depth JPEG rings like any client and announces itself in its own
`display_<stream>` control fields, so the encoder encodes what the window shows. It is a
child of its own because a GUI toolkit may stall (a slow X server) or end the process (Qt
exits when the X connection breaks): neither may touch encoding, the web clients or a
recording. Keys toggle the filters through the same settings document as the page's
buttons and POST /filters; q, or closing the window, stops the whole server like Ctrl-C.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import threading
import time
from typing import Any

import numpy as np

from pipeline.child import Handles, install_stop_handlers, run_child
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FrameRing

log = logging.getLogger("display")

TITLE = "camera (q quits; g b t e c k l a s r z toggle filters, x clears)"
# One-letter filter toggles, as the old receiver had them.
KEYS = {
    "g": "gray", "b": "blur", "t": "threshold", "e": "edges", "c": "contours",
    "k": "corners", "l": "lines", "a": "laplacian", "s": "bgsub", "r": "rotate90",
    "z": "resize",
}
# The GUI's own event wait paces the loop: keys, repaints and the window's close button
# are handled within this many ms, and a new frame is shown at the next turn.
EVENT_WAIT_MS = 10
HEARTBEAT_EVERY_S = 0.5


class NoScreen(Exception):
    """The X server named by DISPLAY does not answer."""


def screen_size() -> tuple[int, int] | None:
    """(width, height) of the default X screen; None if libX11 is not there to ask.

    Asked through libX11 directly because a Qt build of OpenCV aborts the whole process
    when it cannot connect, which must end in one clear line instead.
    """
    path = ctypes.util.find_library("X11")
    if path is None:
        return None
    x11 = ctypes.CDLL(path)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for fn in (x11.XDefaultScreen, x11.XCloseDisplay):
        fn.argtypes = [ctypes.c_void_p]
    for fn in (x11.XDisplayWidth, x11.XDisplayHeight):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        raise NoScreen(f"cannot open the X display {os.environ.get('DISPLAY', '')!r}")
    try:
        screen = x11.XDefaultScreen(dpy)
        return int(x11.XDisplayWidth(dpy, screen)), int(x11.XDisplayHeight(dpy, screen))
    finally:
        x11.XCloseDisplay(dpy)


def gui_backend() -> str:
    """The GUI backend OpenCV was built with ("QT5", "GTK3" ...), "NONE" for headless builds."""
    import cv2  # noqa: PLC0415

    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.strip().partition(":")
        if key == "GUI":
            return value.strip() or "NONE"
    return "NONE"


def display_problem() -> str | None:
    """Why an OpenCV window cannot be shown here, or None if it can."""
    if not os.environ.get("DISPLAY"):
        return "--display needs a graphical session (DISPLAY is not set)"
    if gui_backend() == "NONE":
        return ("--display: this OpenCV build has no GUI support (opencv-python-headless); "
                "install opencv-python instead (see README)")
    try:
        screen_size()
    except NoScreen as exc:
        return f"--display: {exc}"
    return None


def toggled(active: list[str], key: str) -> list[str] | None:
    """The filter list after pressing `key`, or None if the key means nothing here."""
    if key == "x":
        return []
    name = KEYS.get(key)
    if name is None:
        return None
    on = [f for f in active if f.partition("=")[0] == name]
    return [f for f in active if f not in on] if on else [*active, name]


def side_by_side(color: np.ndarray, depth: np.ndarray | None, max_width: int) -> np.ndarray:
    """Color with depth (scaled to its height) on the right, or color alone if too wide."""
    import cv2  # noqa: PLC0415

    if depth is None:
        return color
    h = color.shape[0]
    if depth.shape[0] != h:
        depth = cv2.resize(depth, (max(1, round(depth.shape[1] * h / depth.shape[0])), h),
                           interpolation=cv2.INTER_AREA)
    if color.shape[1] + depth.shape[1] > max_width:
        return color
    return np.hstack((color, depth))


class DisplayWindow:
    """The window and its loop: newest frame shown, keys handled, close noticed."""

    def __init__(self, cfg: Config, control: Control, rings: dict[str, FrameRing],
                 parent_pid: int, max_width: int) -> None:
        import cv2  # noqa: PLC0415

        self.cv2, self.cfg, self.control, self.rings = cv2, cfg, control, rings
        self.parent_pid, self.max_width = parent_pid, max_width
        self.with_depth = 2 * cfg.width <= max_width
        cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        self.shown = False

    def run(self, stop: threading.Event) -> None:
        """Show frames until the stop flag, q or the window's close button."""
        cv2 = self.cv2
        last = -1
        beat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now - beat >= HEARTBEAT_EVERY_S:
                self.control["hb_display"] = time.time()
                beat = now
            key = cv2.waitKey(EVENT_WAIT_MS)
            # Letters come as their code; arrows and the like (above 255) mean nothing here.
            if 0 <= key < 256 and self.on_key(chr(key).lower()):
                return
            if self.shown and self.closed():
                log.info("window closed: stopping")
                self.stop_server()
                return
            counter = self.rings["color"].counter()
            if counter != last:
                last = counter
                self.show_newest()

    def closed(self) -> bool:
        """True once the user closed the window (Qt then drops it altogether)."""
        try:
            return self.cv2.getWindowProperty(TITLE, self.cv2.WND_PROP_VISIBLE) < 1
        except self.cv2.error:
            return True

    def show_newest(self) -> None:
        """Decode the newest color (and depth) JPEG and draw them; skipped frames are fine."""
        color = self._decode("color")
        if color is None:
            return
        depth = self._decode("depth") if self.with_depth else None
        self.cv2.imshow(TITLE, side_by_side(color, depth, self.max_width))
        self.shown = True

    def _decode(self, stream: str) -> np.ndarray | None:
        got = self.rings[stream].read_latest()
        if got is None:
            return None
        return self.cv2.imdecode(np.frombuffer(got[1], np.uint8), self.cv2.IMREAD_COLOR)

    def on_key(self, ch: str) -> bool:
        """Toggle a filter (or quit on q); True when the window is done."""
        if ch == "q":
            log.info("q pressed: stopping")
            self.stop_server()
            return True
        if toggled([], ch) is None:
            return False  # not a filter key: leave the settings (and stateful filters) alone
        changed: dict[str, Any] = {}

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            active = toggled(list(doc.get("filters", self.cfg.filters)), ch) or []
            changed["filters"] = active
            return {**doc, "filters": active}

        self.control.update_settings(change)
        if "filters" in changed:
            log.info("filters: %s", ", ".join(changed["filters"]) or "none")
        return False

    def stop_server(self) -> None:
        """Ask the supervisor to stop everything, as Ctrl-C does."""
        os.kill(self.parent_pid, signal.SIGTERM)

    def close(self) -> None:
        self.cv2.destroyAllWindows()
        self.cv2.waitKey(1)


def display_main(cfg: Config, handles: Handles) -> None:
    """Entry point of the display process (spawned by the supervisor)."""

    def body() -> None:
        stop = threading.Event()
        install_stop_handlers(stop)
        control = Control.attach(handles.control)
        # A predecessor that Qt ended never cleared what it asked for.
        control["display_color"] = control["display_depth"] = 0
        rings = {s: FrameRing.attach(handles.jpeg[s]) for s in ("color", "depth")}
        try:
            size = screen_size()
        except NoScreen as exc:
            log.warning("%s: no window (the server goes on)", exc)
            _idle(control, stop)
            return
        window = DisplayWindow(cfg, control, rings, handles.parent_pid,
                               max_width=size[0] if size else 1920)
        control["display_color"] = 1
        control["display_depth"] = 1 if window.with_depth else 0
        try:
            window.run(stop)
        finally:
            control["display_color"] = 0
            control["display_depth"] = 0
            window.close()
        _idle(control, stop)

    run_child("display", cfg.log_level, handles.parent_pid, body)


def _idle(control: Control, stop: threading.Event) -> None:
    """Beat until the supervisor stops us (after q, or with no screen to draw on)."""
    while not stop.wait(HEARTBEAT_EVERY_S):
        control["hb_display"] = time.time()
