"""The tap process: records and snapshots the color stream beside the web server.

It reads the color JPEG ring like any client (and counts as a sink, so the encoder keeps
encoding color), writes each live JPEG into the recording as it is and keeps the newest
one for --snapshot-on-exit. Its own process means a crashed encoder does not cut the
recording short, and every exit path (Ctrl-C, SIGTERM, a restart) finalizes the file.
(The --display window is a child of its own: sinks/display.py.)
"""

from __future__ import annotations

import logging
import select
import threading
import time
from pathlib import Path

from pipeline.child import Handles, drain, install_stop_handlers, run_child
from pipeline.config import Config
from pipeline.control import Control
from pipeline.shm import FLAG_NO_SIGNAL, FrameRing

log = logging.getLogger("tap")

def unused_path(path: str) -> str:
    """`path`, or path-1.ext, path-2.ext ... so a restarted recorder never overwrites."""
    p = Path(path)
    n = 1
    while p.exists():
        p = Path(path).with_name(f"{Path(path).stem}-{n}{Path(path).suffix}")
        n += 1
    return str(p)


def tap_main(cfg: Config, handles: Handles) -> None:
    """Entry point of the tap process (spawned by the supervisor)."""

    def body() -> None:
        stop = threading.Event()
        install_stop_handlers(stop)
        control = Control.attach(handles.control)
        ring = FrameRing.attach(handles.jpeg["color"])
        recorder = None
        if cfg.record:
            from media.recorder import JpegRecorder  # noqa: PLC0415

            path = unused_path(cfg.record) if control["restarts_tap"] else cfg.record
            recorder = JpegRecorder(path, fps_hint=max(cfg.fps, 30.0))
            log.info("recording color to %s", path)
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
        finally:
            control["sink_color"] = 0
            if recorder is not None:
                recorder.close()
                log.info("recording finalized: %d frames (%d dropped)",
                         recorder.frames_written, recorder.frames_dropped)
            if cfg.snapshot_on_exit and last_jpeg is not None:
                from media.recorder import save_snapshot  # noqa: PLC0415

                save_snapshot(cfg.snapshot_on_exit, last_jpeg)
                log.info("last frame saved to %s", cfg.snapshot_on_exit)

    run_child("tap", cfg.log_level, handles.parent_pid, body)
