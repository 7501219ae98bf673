"""The tap process: records and snapshots the color stream beside the web server.

It reads the color JPEG ring like any client (and counts as a sink, so the encoder keeps
encoding color), writes each live JPEG into the recording as it is and keeps the newest
one for --snapshot-on-exit. Its own process means a crashed encoder does not cut the
recording short, and every exit path (Ctrl-C, SIGTERM, a restart) finalizes the file.
(The --display window is a child of its own: sinks/display.py.)
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from media.recorder import JpegRecorder, save_snapshot
from pipeline.child import Child, drain
from pipeline.shm import FLAG_NO_SIGNAL, FrameRing

log = logging.getLogger("tap")

def unused_path(path: str, taken: Callable[[str], bool] = os.path.exists) -> str:
    """`path`, or path-1.ext, path-2.ext ... so a restarted recorder never overwrites
    (`taken` says whether a name is in use; by default, whether the file exists)."""
    p = Path(path)
    n = 1
    while taken(str(p)):
        p = Path(path).with_name(f"{Path(path).stem}-{n}{Path(path).suffix}")
        n += 1
    return str(p)


@dataclass(frozen=True)
class TapOptions:
    """--record and --snapshot-on-exit: where the color JPEGs go, as they are."""

    record: str | None = None
    snapshot_on_exit: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.record or self.snapshot_on_exit)


def taps_by_camera(records: list[str] | None, snapshots: list[str] | None,
                   cameras: list[str]) -> dict[str, TapOptions]:
    """Each camera's --record and --snapshot-on-exit from `[NAME:]PATH` values (no NAME:
    the first camera). Raises ValueError (one line) for an unknown NAME, a camera given
    twice, or one file named twice."""
    found: dict[str, dict[str, str]] = {}
    paths: list[str] = []
    for option, values in (("record", records), ("snapshot_on_exit", snapshots)):
        flag = "--" + option.replace("_", "-")
        for text in values or ():
            head, sep, rest = text.partition(":")
            camera, path = (head, rest) if sep and "/" not in head and head else (
                cameras[0], text)
            if camera not in cameras:
                raise ValueError(f"{flag} {text}: no camera named {camera!r} "
                                 f"(cameras: {', '.join(cameras)})")
            if not path:
                raise ValueError(f"{flag} {text}: no file after the camera's name")
            if option in found.get(camera, {}):
                raise ValueError(f"{flag}: camera {camera!r} is given twice")
            full = os.path.abspath(path)
            if full in paths:
                raise ValueError(f"{flag} {text}: {path} is named twice")
            paths.append(full)
            found.setdefault(camera, {})[option] = path
    return {camera: TapOptions(**opts) for camera, opts in found.items()}


def tap_main(child: Child, opts: TapOptions) -> None:
    """The tap child: record the color stream and keep its newest frame for the snapshot."""
    control, handles, stop = child.control, child.handles, child.stop
    ring = FrameRing.attach(handles.jpeg["color"])
    recorder = None
    if opts.record:
        path = unused_path(opts.record) if control["restarts_tap"] else opts.record
        recorder = JpegRecorder(path, fps_hint=max(child.cfg.fps, 30.0))
        log.info("recording color to %s", path)
    control["sink_color"] = 1
    last_jpeg: bytes | None = None
    last = ring.counter()
    fd = handles.tap_wake_r.fileno()
    try:
        while not stop.is_set():
            child.beat()
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
        if opts.snapshot_on_exit and last_jpeg is not None:
            save_snapshot(opts.snapshot_on_exit, last_jpeg)
            log.info("last frame saved to %s", opts.snapshot_on_exit)
