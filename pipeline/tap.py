"""The tap process: records, snapshots and displays the color stream beside the web server.

It reads the color JPEG ring like any client (and counts as a sink, so the encoder keeps
encoding color), writes each live JPEG into the recording as it is, keeps the newest one
for --snapshot-on-exit, and with --display shows it in an OpenCV window. Its own process
means a crashed encoder does not cut the recording short, and every exit path (Ctrl-C,
SIGTERM, a restart) finalizes the file.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from pathlib import Path

from pipeline.child import Handles, drain, install_stop_handlers, run_child
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_NO_SIGNAL, FrameRing

log = logging.getLogger("tap")

# Keys of the display window: the old receiver's one-letter filter toggles.
KEYS = {
    "g": "gray", "b": "blur", "t": "threshold", "e": "edges", "c": "contours",
    "k": "corners", "l": "lines", "a": "laplacian", "s": "bgsub", "r": "rotate90",
    "z": "resize",
}


def display_problem() -> str | None:
    """Why an OpenCV window cannot be shown here, or None if it can."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "--display needs a graphical session (DISPLAY is not set)"
    import cv2  # noqa: PLC0415

    try:
        cv2.namedWindow("probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("probe")
    except cv2.error:
        return ("--display: this OpenCV build has no GUI support (opencv-python-headless); "
                "install opencv-python to use it")
    return None


def unused_path(path: str) -> str:
    """`path`, or path-1.ext, path-2.ext ... so a restarted recorder never overwrites."""
    p = Path(path)
    n = 1
    while p.exists():
        p = Path(path).with_name(f"{Path(path).stem}-{n}{Path(path).suffix}")
        n += 1
    return str(p)


class Display:
    """An OpenCV window with one-key filter toggles; q quits the whole server."""

    def __init__(self, control: Control, parent_pid: int) -> None:
        import cv2  # noqa: PLC0415

        self.cv2, self.control, self.parent_pid = cv2, control, parent_pid
        self.window = "camera (q quits; g b t e c k l a s r z toggle filters, x clears)"
        cv2.namedWindow(self.window, cv2.WINDOW_AUTOSIZE)

    def show(self, jpeg: bytes) -> None:
        import numpy as np  # noqa: PLC0415

        img = self.cv2.imdecode(np.frombuffer(jpeg, np.uint8), self.cv2.IMREAD_COLOR)
        if img is not None:
            self.cv2.imshow(self.window, img)
        self.keys()

    def keys(self) -> None:
        key = self.cv2.waitKey(1) & 0xFF
        if key == 0xFF:
            return
        ch = chr(key).lower()
        if ch == "q":
            log.info("q pressed: stopping")
            os.kill(self.parent_pid, signal.SIGTERM)
            return
        settings = self.control.settings()
        active = list(settings.get("filters", []))
        if ch == "x":
            active = []
        elif ch in KEYS:
            name = KEYS[ch]
            active = [f for f in active if f != name] if name in active else [*active, name]
        else:
            return
        self.control.set_settings({**settings, "filters": active})
        log.info("filters: %s", ", ".join(active) or "none")

    def close(self) -> None:
        self.cv2.destroyAllWindows()


def tap_main(cfg: Config, handles: Handles) -> None:
    """Entry point of the tap process (spawned by the supervisor)."""

    def body() -> None:
        stop = threading.Event()
        install_stop_handlers(stop)
        control = Control.attach(handles.control)
        ring = FrameRing.attach(handles.jpeg["color"])
        recorder = None
        if cfg.record:
            from encoder.recorder import JpegRecorder  # noqa: PLC0415

            path = unused_path(cfg.record) if control["restarts_tap"] else cfg.record
            recorder = JpegRecorder(path, fps_hint=max(cfg.fps, 30.0))
            log.info("recording color to %s", path)
        display = Display(control, handles.parent_pid) if cfg.display else None
        control["sink_color"] = 1
        last_jpeg: bytes | None = None
        last = ring.counter()
        fd = handles.tap_wake_r.fileno()
        try:
            while not stop.is_set():
                control["hb_tap"] = time.time()
                readable, _, _ = select.select([fd], [], [], 0.5)
                if readable:
                    drain(handles.tap_wake_r)
                if ring.counter() == last:
                    if display is not None:
                        display.keys()
                    continue
                got = ring.read_latest()
                if got is None:
                    continue
                meta, jpeg = got
                last = meta.counter
                if meta.flags & FLAG_NO_SIGNAL:
                    continue
                last_jpeg = jpeg
                if recorder is not None:
                    recorder.write(jpeg, meta.ts_capture)
                if display is not None:
                    display.show(jpeg)
        finally:
            control["sink_color"] = 0
            if recorder is not None:
                recorder.close()
                log.info("recording finalized: %d frames (%d dropped)",
                         recorder.frames_written, recorder.frames_dropped)
            if cfg.snapshot_on_exit and last_jpeg is not None:
                from encoder.recorder import save_snapshot  # noqa: PLC0415

                save_snapshot(cfg.snapshot_on_exit, last_jpeg)
                log.info("last frame saved to %s", cfg.snapshot_on_exit)
            if display is not None:
                display.close()

    run_child("tap", cfg.log_level, handles.parent_pid, body)
