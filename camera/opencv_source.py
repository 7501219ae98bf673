"""Any camera or stream OpenCV can open: a UVC/V4L2 device number, a video file, a URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2

from camera.base import Frame, FrameSource, SourceConfigError, SourceEnded, SourceError


class OpenCVSource(FrameSource):
    """cv2.VideoCapture behind the FrameSource interface; files play at their own rate."""

    kind = "opencv"

    def __init__(self, target: str, loop: bool = True) -> None:
        self.target = target
        self.loop = loop
        self.is_file = not target.isdigit() and "://" not in target
        self.self_paced = not self.is_file
        self._cap: cv2.VideoCapture | None = None
        self._n = 0
        self.width = self.height = 0
        self.fps = 0.0

    def open(self) -> None:
        """Open the device, file or URL (a missing file is a configuration error)."""
        if self.is_file and not Path(self.target).is_file():
            raise SourceConfigError(f"opencv:{self.target}: no such file")
        cap = cv2.VideoCapture(int(self.target) if self.target.isdigit() else self.target)
        if not cap.isOpened():
            cap.release()
            if self.is_file:
                raise SourceConfigError(f"opencv:{self.target}: OpenCV cannot read this file")
            raise SourceError(f"cannot open {self.target}")
        self._cap = cap
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self.is_file and 0.5 <= self.fps <= 120:
            self.pace_fps = self.fps

    def read(self, timeout: float) -> Frame | None:
        """Next frame; a file that ends rewinds (loop) or raises SourceEnded."""
        if self._cap is None:
            raise SourceError("not open")
        ok, img = self._cap.read()
        if not ok:
            if self.is_file and self.loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = self._cap.read()
            if not ok:
                if self.is_file:
                    raise SourceEnded(f"end of {Path(self.target).name}")
                raise SourceError(f"{self.target} stopped delivering frames")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        self._n += 1
        self.height, self.width = img.shape[:2]
        return Frame(img, None, time.time(), self._n, 0.0)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "width": self.width or None,
                "height": self.height or None, "fps": self.fps or None}
