"""A video stage's figures in the control block: fps, bit rate, keyframes, encode time."""

from __future__ import annotations

import time

from pipeline.control import Control


class StageStats:
    """`<prefix>_frames`, `_bytes`, `_keyframes`, `_encode_ms` per access unit, and
    `_fps` and `_bps` once a second, into the control block."""

    def __init__(self, control: Control, prefix: str) -> None:
        self.control, self.prefix = control, prefix
        self.t0 = time.monotonic()
        self.n = 0
        self.bytes = 0

    def record(self, size: int, keyframe: bool, encode_s: float) -> None:
        c, p = self.control, self.prefix
        c.add(f"{p}_frames")
        c.add(f"{p}_bytes", size)
        if keyframe:
            c.add(f"{p}_keyframes")
        c[f"{p}_encode_ms"] = encode_s * 1000.0
        self.n += 1
        self.bytes += size
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.t0 >= 1.0:
            self.control[f"{self.prefix}_fps"] = self.n / (now - self.t0)
            self.control[f"{self.prefix}_bps"] = self.bytes * 8 / (now - self.t0)
            self.t0, self.n, self.bytes = now, 0, 0

    def idle(self) -> None:
        """Nothing encoded: the rates read zero, not the last busy second's."""
        self.tick()
        if self.control[f"{self.prefix}_fps"]:
            self.control[f"{self.prefix}_fps"] = self.control[f"{self.prefix}_bps"] = 0.0
