"""The display child: an OpenCV window with the live color stream (and depth beside it).

It reads the color and depth JPEG rings like any client and announces itself in its own
`display_<stream>` control fields, so the encoder encodes what the window shows. It is a
child of its own because a GUI toolkit may stall (a slow X server) or end the process (Qt
exits when the X connection breaks): neither may touch encoding, the web clients or a
recording. Keys toggle the filters through the same settings document as the page's
buttons and POST /filters; q, or closing the window, stops the whole server like Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.child import EXIT_CRASH, Child
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FrameRing
from sinks.x11 import NoScreen, on_screen, screen_size

log = logging.getLogger("display")

TITLE = "camera (q quits; g b t e c k l a s r z toggle filters, x clears)"
"""The window's title; with several cameras each window has one naming its camera."""


def window_title(camera: str = "") -> str:
    """The title of camera `camera`'s window ("": the only camera's)."""
    return TITLE.replace("camera", f"camera {camera}", 1) if camera else TITLE
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
# Qt's event wait (cv2.waitKey) now and then never returns on a busy machine: its timer
# stops firing and the window neither repaints nor takes keys. The loop beats every turn,
# so a beat this old means that hang; the supervisor then kills and restarts the window.
HUNG_AFTER_S = 5.0
# Qt on a busy machine now and then maps a window it never draws into (it stays blank and
# deaf to keys while the loop runs on). Once the window has shown frames this long, a few
# of its pixels are read back from the screen; a blank one is opened again by a restart,
# at most this many times per run (a window covered by another cannot pass the check).
DRAWN_CHECK_AFTER_S = 1.5
REOPEN_AT_MOST = 3
# A window is called blank only when this many reads, this far apart, match none of the
# frames shown in the last second: one read can catch a repaint half done.
BLANK_READS = 3
BLANK_READ_EVERY_S = 0.5
RECENT_FRAMES = 30
PLAIN_SPREAD = 10.0
"""Below this spread the screen's samples are plain: no frame (sample() keeps only frames
spread twice as wide) can be showing there."""


class BlankWindow(Exception):
    """The window is on screen but nothing was drawn into it."""


def grid(width: int, height: int) -> list[tuple[int, int]]:
    """The pixels (x, y) of a `width` x `height` frame that the drawn check compares."""
    return [(width * i // 9, height * j // 7) for i in range(1, 9) for j in range(1, 7)]


def sample(frame: np.ndarray) -> np.ndarray | None:
    """A frame's colours at its grid; None for a plain frame, which proves nothing."""
    h, w = frame.shape[:2]
    got = np.array([frame[py, px] for px, py in grid(w, h)], np.int16)
    return None if got.std() < 20 else got


def drawn(recent: list[np.ndarray], size: tuple[int, int],
          rect: tuple[int, int, int, int]) -> bool | None:
    """Whether the screen at `rect` shows one of the `recent` frames' samples (frames of
    `size`, drawn 1:1); None when that cannot be told (resized, unreadable screen)."""
    if (rect[2], rect[3]) != size:
        return None
    got = on_screen(rect, grid(*size))
    if got is None:
        return None
    # Qt paints a frame a few turns after imshow, more on a busy machine: the screen may
    # show any recent frame. Far from all of them means not drawn at all; so does a plain
    # screen, since the recent frames are never plain (a dark frame was once within the
    # tolerance of a black window).
    off = [float(np.median(np.abs(got - want))) for want in recent]
    log.debug("drawn check at %s: nearest recent frame %.0f off, screen spread %.0f",
              rect, min(off, default=-1), float(got.std()))
    return float(got.std()) >= PLAIN_SPREAD and any(o < 40 for o in off)


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
                 parent_pid: int, *, max_width: int, beat: Callable[[], None],
                 title: str = TITLE, at: tuple[int, int] | None = None) -> None:
        import cv2  # noqa: PLC0415

        self.cv2, self.cfg, self.control, self.rings = cv2, cfg, control, rings
        self.title = title
        self.parent_pid, self.max_width, self.beat = parent_pid, max_width, beat
        self.with_depth = 2 * cfg.width <= max_width
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        self.at = at  # where it goes once it shows frames: moved while being mapped, Qt
        # left it blank now and then
        # Mapped at once at the size frames will have: Qt maps a new window at a default
        # size, and one resized while it is being mapped was on a busy machine now and
        # then never drawn again (1 start in 10-30 under load here; fewer opened this way).
        width = 2 * cfg.width if self.with_depth else cfg.width
        cv2.imshow(title, np.zeros((cfg.height, width, 3), np.uint8))
        self.shown = False
        self.next_check = 0.0
        self.misses = 0
        self.recent: deque[np.ndarray] = deque(maxlen=RECENT_FRAMES)
        self.checked = False
        self.may_reopen = control["restarts_display"] < REOPEN_AT_MOST

    def run(self, stop: threading.Event) -> None:
        """Show frames until the stop flag, q or the window's close button."""
        cv2 = self.cv2
        last = -1
        beat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now - beat >= HEARTBEAT_EVERY_S:
                self.beat()
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
            return self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) < 1
        except self.cv2.error:
            return True

    def show_newest(self) -> None:
        """Decode the newest color (and depth) JPEG and draw them; skipped frames are fine."""
        color = self._decode("color")
        if color is None:
            return
        depth = self._decode("depth") if self.with_depth else None
        frame = side_by_side(color, depth, self.max_width)
        self.cv2.imshow(self.title, frame)
        now = time.monotonic()
        if not self.shown:
            self.shown, self.next_check = True, now + DRAWN_CHECK_AFTER_S
            if self.at is not None:
                self.cv2.waitKey(1)
                self.cv2.moveWindow(self.title, *self.at)
        if not self.checked:
            self.check_drawn(frame, now)

    def check_drawn(self, frame: np.ndarray, now: float) -> None:
        """Raise BlankWindow if the screen shows none of the recent frames, read after read."""
        got = sample(frame)
        if got is not None:
            self.recent.append(got)
        if now < self.next_check or not self.recent:
            return  # too early, or only plain frames so far (they prove nothing)
        self.cv2.waitKey(1)  # let this frame on its way to the screen
        size = (frame.shape[1], frame.shape[0])
        verdict = drawn(list(self.recent), size, self.cv2.getWindowImageRect(self.title))
        if verdict is False:
            self.misses += 1
            log.debug("the window showed none of the last %d frames (%d/%d)",
                      len(self.recent), self.misses, BLANK_READS)
            if self.misses >= BLANK_READS:
                if self.may_reopen:
                    raise BlankWindow
                self.checked = True
                log.warning("the window still looks blank after %d restarts: left as it is "
                            "(a window covered by another, or scaled, cannot pass the check)",
                            REOPEN_AT_MOST)
            self.next_check = now + BLANK_READ_EVERY_S
        else:
            self.checked = True  # drawn, or cannot be told on this screen
            if verdict:
                log.info("the window shows the stream (%dx%d, read back from the screen)",
                         *size)

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


def tile(sizes: list[tuple[int, int]], index: int, screen_width: int) -> tuple[int, int]:
    """Where window `index` goes when the windows of `sizes` (each camera's frame size)
    are laid left to right in rows across the screen: each shows depth beside color when
    that fits, as DisplayWindow does."""
    x = y = row = 0
    for i, (w, h) in enumerate(sizes):
        width = 2 * w if 2 * w <= screen_width else w
        if x and x + width > screen_width:
            x, y, row = 0, y + row, 0
        if i == index:
            return x, y
        x, row = x + width, max(row, h)
    raise IndexError(index)


def display_main(child: Child, camera: str = "", index: int = 0,
                 sizes: tuple[tuple[int, int], ...] = ()) -> None:
    """The display child: the streams in a desktop window; keys toggle filters, q quits.
    `camera`: the camera's name in the window's title, when the server has several;
    `index`, `sizes`: its place among every camera's window (tiled, not stacked)."""
    control, stop = child.control, child.stop
    # A predecessor that Qt ended never cleared what it asked for.
    control["display_color"] = control["display_depth"] = 0
    rings = {s: FrameRing.attach(child.handles.jpeg[s]) for s in ("color", "depth")}
    try:
        size = screen_size()
    except NoScreen as exc:
        log.warning("%s: no window (the server goes on)", exc)
        _idle(child)
        return
    window = DisplayWindow(child.cfg, control, rings, child.handles.parent_pid,
                           max_width=size[0] if size else 1920, beat=child.beat,
                           title=window_title(camera),
                           at=tile(list(sizes), index, size[0] if size else 1920)
                           if len(sizes) > 1 else None)
    control["display_color"] = 1
    control["display_depth"] = 1 if window.with_depth else 0
    try:
        window.run(stop)
    except BlankWindow:
        log.warning("the window stayed blank (Qt lost its drawing): opening it again")
        sys.exit(EXIT_CRASH)
    finally:
        control["display_color"] = 0
        control["display_depth"] = 0
        window.close()
    _idle(child)


def _idle(child: Child) -> None:
    """Beat until the supervisor stops us (after q, or with no screen to draw on)."""
    while not child.stop.wait(HEARTBEAT_EVERY_S):
        child.beat()
