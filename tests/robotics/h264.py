"""Decode /camera/h264 payloads with FFmpeg's H.264 decoder (PyAV), as a viewer would."""

from __future__ import annotations

import io

import av
import numpy as np


def decode(stream: bytes) -> list[np.ndarray]:
    """Every frame (BGR) of an Annex B byte stream; raises av.error.* on a corrupt one."""
    with av.open(io.BytesIO(stream), format="h264") as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def decodes_alone(access_unit: bytes) -> bool:
    """True when one access unit decodes with no earlier ones: an IDR with its SPS/PPS."""
    try:
        return len(decode(access_unit)) == 1
    except av.error.FFmpegError:
        return False
