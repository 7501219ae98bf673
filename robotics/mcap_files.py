"""The files of one MCAP recording: one file, or a numbered series split by size or time.

Without a split the recording is the path given. With `--record-mcap-split-size` or
`--record-mcap-split-duration`, `DIR/run.mcap` names a series `DIR/run_0.mcap`,
`DIR/run_1.mcap` ... (rosbag2's `<name>_<index>.mcap`), and each file stands on its own:
the SDK writes the schemas and channels into every file it opens, the publisher puts the
calibration and /tf in at once, and metadata records say which run and which file it is,
which camera, with which options, and (when the file is closed) which depth frames it holds.

The open chunk is closed and written out every `--record-mcap-flush` seconds, so a
killed server leaves every earlier message readable. Before each flush's worth of data
would no longer fit beside the room the file's summary needs, the recording stops: the
file is finalized, one line says why, and the child stays idle rather than crash-loop.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import foxglove
from foxglove.mcap import MCAPCompression, MCAPWriteOptions

from media.urls import redact
from pipeline.child import CannotStart
from pipeline.control import Control
from robotics.flavours import FLAVOURS
from robotics.options import RoboticsOptions
from robotics.publisher import Publishers, reason
from sinks.tap import unused_path

log = logging.getLogger("robotics")

MCAP_CHUNK_BYTES = 4 << 20
SUMMARY_BASE_BYTES = 1 << 20
SUMMARY_BYTES_PER_CHUNK = 256
"""Room kept free to finish a file: its summary (chunk indexes grow with every chunk)."""
CAMERA_KEYS = ("serial", "firmware", "name", "product_line", "kind")


def series_path(path: str, index: int) -> str:
    """File `index` of a split recording: DIR/run.mcap -> DIR/run_<index>.mcap (rosbag2's)."""
    root, ext = os.path.splitext(path)
    return f"{root}_{index}{ext}"


class McapSeries:
    """The open MCAP writer of a recording and what comes after it: flush, split, keep, stop."""

    def __init__(self, opts: RoboticsOptions, ctx: Any, control: Control) -> None:
        assert opts.record_mcap is not None
        self.opts, self.ctx, self.control = opts, ctx, control
        base = opts.record_mcap
        if control["restarts_mcap"]:  # never overwrite what a crashed predecessor wrote
            base = unused_path(base, taken=lambda p: os.path.exists(self._path(p, 0)))
        self.base = base
        self.run_id = str(uuid.uuid4())
        self.index = -1
        self.writer: Any = None
        self.path = ""
        self.files: list[str] = []
        self.opened_at = self.flush_due = 0.0
        self.size_at_flush = self.grown = self.flushes = 0
        self.camera_written = False
        self.failure = ""
        if not self._open_next():
            raise CannotStart(f"--record-mcap {self.path}: {self.failure}")

    def _path(self, base: str, index: int) -> str:
        return series_path(base, index) if self.opts.split else base

    def _open_next(self) -> bool:
        """Open the next file of the series; False (with `failure` set) if it cannot be."""
        self.index += 1
        self.path = self._path(self.base, self.index)
        compression = {"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4,
                       "none": None}[self.opts.record_mcap_compression]
        try:
            self.writer = foxglove.open_mcap(
                self.path, allow_overwrite=True, context=self.ctx,
                writer_options=MCAPWriteOptions(
                    compression=compression, chunk_size=MCAP_CHUNK_BYTES, compression_threads=0,
                    profile=FLAVOURS[self.opts.record_mcap_profile].profile or None))
            self.writer.write_metadata("recording", self._recording())
        except (RuntimeError, OSError) as exc:
            self.writer, self.failure = None, reason(exc)
            return False
        now = time.monotonic()
        self.opened_at, self.flush_due = now, now + self.opts.record_mcap_flush
        self.size_at_flush = self.grown = self.flushes = 0
        self.camera_written = False
        self.files.append(self.path)
        self.control["mcap_recording"] = 1.0
        self.control["mcap_file_index"] = float(self.index)
        keep = self.opts.record_mcap_keep
        while keep and len(self.files) > keep:
            old = self.files.pop(0)
            try:
                os.remove(old)
                log.info("deleted %s (keeping the newest %d files)", old, keep)
            except OSError as exc:
                log.warning("cannot delete %s: %s", old, exc.strerror or exc)
        return True

    def _recording(self) -> dict[str, str]:
        opts = dataclasses.asdict(self.opts)
        if opts["gps"]:
            opts["gps"] = redact(opts["gps"])
        return {"run_id": self.run_id, "file_index": str(self.index),
                "started": datetime.now(timezone.utc).isoformat(),
                "options": json.dumps(opts, sort_keys=True)}

    def _camera(self, writer: Any, pub: Publishers) -> None:
        """Camera identity (where the source reports it) and calibration, once per file."""
        if self.camera_written or pub.model is None:
            return
        info = self.control.info()
        doc = {k: str(info[k]) for k in CAMERA_KEYS if info.get(k)}
        doc["model"] = json.dumps(pub.model)
        writer.write_metadata("camera", doc)
        self.camera_written = True

    def tick(self, pub: Publishers) -> bool:
        """After each publisher step: camera metadata, flush, split. False: recording over."""
        if self.writer is None:
            return False
        self._camera(self.writer, pub)
        self.control["mcap_depth_dropped"] = float(pub.png.dropped if pub.png else 0)
        now = time.monotonic()
        if now >= self.flush_due:
            self.flush_due = now + self.opts.record_mcap_flush
            if not self.flush() or not self._room(pub):
                return False
        if self._split_due(now):
            pub.settle()
            closed = self.path
            self._finish(pub)
            if not self._open_next():
                log.error("recording stopped: cannot open %s: %s", self.path, self.failure)
                return False
            pub.next_file()
            log.info("MCAP file %s finalized; recording to %s", closed, self.path)
        return True

    def _split_due(self, now: float) -> bool:
        size, seconds = self.opts.record_mcap_split_size, self.opts.record_mcap_split_duration
        if seconds and now - self.opened_at >= seconds:
            return True
        return bool(size) and os.path.getsize(self.path) >= size

    def flush(self) -> bool:
        """Close the open chunk and write it out; False (recording over) if it cannot be."""
        if self.writer is None:
            return False
        try:
            self.writer.flush()
        except RuntimeError as exc:
            log.error("recording stopped: cannot write %s: %s; the file is readable up to "
                      "its last whole chunk", self.path, reason(exc))
            self._abandon()
            return False
        self.flushes += 1
        return True

    def _room(self, pub: Publishers) -> bool:
        """Stop (finalized, one line) before the next flush's data could leave no room."""
        size = os.path.getsize(self.path)
        self.grown = max(self.grown, size - self.size_at_flush)
        self.size_at_flush = size
        st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        free = st.f_bavail * st.f_frsize
        need = 2 * self.grown + SUMMARY_BASE_BYTES + SUMMARY_BYTES_PER_CHUNK * (
            self.flushes + size // MCAP_CHUNK_BYTES)
        if free >= need:
            return True
        pub.settle()
        path = self.path
        finished = self._finish(pub)
        log.error("disk full: %.1f MiB left beside %s, %.1f MiB needed to go on; recording "
                  "stopped, %s %s (the server goes on serving)", free / 2**20, path,
                  need / 2**20, path, "finalized" if finished else "NOT finalized")
        return False

    def _finish(self, pub: Publishers | None) -> bool:
        """Close the current file with its frame account; True if it was finalized."""
        writer, self.writer = self.writer, None
        if writer is None:
            return False
        self.control["mcap_recording"] = 0.0
        try:
            if pub is not None:
                self._camera(writer, pub)
                writer.write_metadata("frames", pub.span.record())
            writer.close()
        except RuntimeError as exc:
            log.error("%s could not be finalized: %s", self.path, reason(exc))
            return False
        return True

    def _abandon(self) -> None:
        writer, self.writer = self.writer, None
        self.control["mcap_recording"] = 0.0
        try:
            writer.close()
        except RuntimeError:
            pass  # it failed to write already; what is on disk stays readable to that point

    def close(self, pub: Publishers | None) -> bool:
        """Finalize the current file (if one is open); True if one was."""
        return self._finish(pub)
