"""The FrameSource interface every capture source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Frame:
    """One capture: BGR color, optional uint16 depth (units of `depth_scale` metres)."""

    color: np.ndarray
    depth: np.ndarray | None
    timestamp: float
    frame_number: int
    depth_scale: float = 0.001


class SourceError(Exception):
    """The source failed at run time (unplugged, stream ended); the capture loop retries."""


class SourceEnded(SourceError):
    """A finite source (a recording played without looping, a file) reached its end."""


class SourceWaiting(SourceError):
    """Nothing to show right now, but the source stays open (e.g. a listener between
    pushers): the capture loop shows NO SIGNAL with this reason and keeps reading."""


class SourceConfigError(Exception):
    """The source cannot work with this configuration; retrying will not help."""


class FrameSource(ABC):
    """A camera, recording or stream producing Frames. Not thread-safe; one reader."""

    kind: str = "source"
    #: True when read() blocks until the device delivers (cameras); False when the
    #: capture loop must pace reads to the configured fps (synthetic scene).
    self_paced: bool = True
    #: Rate the capture loop paces a non-self-paced source at (None: the --fps option).
    pace_fps: float | None = None

    @abstractmethod
    def open(self) -> None:
        """Start streaming. Raises SourceConfigError (fatal) or SourceError (retry)."""

    @abstractmethod
    def read(self, timeout: float) -> Frame | None:
        """Next frame, or None when none arrived within `timeout` seconds.

        Raises SourceError when the source is lost and must be reopened.
        """

    @abstractmethod
    def close(self) -> None:
        """Stop streaming and release the device. Safe to call twice."""

    def imu_samples(self) -> np.ndarray | None:
        """IMU samples (`media.imu.SAMPLE`) that arrived since the last call, oldest
        first; None when the source has no IMU (or it is switched off)."""
        return None

    def info(self) -> dict[str, Any]:
        """What /status shows about this source (with an "imu" entry when it has one)."""
        return {"kind": self.kind}
