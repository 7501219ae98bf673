"""Depth (uint16, device units) to an 8-bit BGR picture for viewing or for the wire.

Every mode goes through a 65536-entry lookup table built once per (mode, range, scale),
so rendering a frame is one table look-up per pixel whatever the mode. Invalid depth
(0) is always black.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

DEPTH_MODES = ("colormap", "gray", "hue", "hue-inverse", "hue-log")


@lru_cache(maxsize=16)
def _level_lut(dmin: float, dmax: float, scale: float, lo: int) -> np.ndarray:
    """uint8 level per raw depth value: linear over [dmin, dmax] onto [lo, 255], 0 = invalid."""
    metres = np.arange(65536, dtype=np.float64) * scale
    frac = np.clip((metres - dmin) / max(dmax - dmin, 1e-9), 0.0, 1.0)
    lut = np.round(lo + frac * (255 - lo)).astype(np.uint8)
    lut[0] = 0
    return lut


@lru_cache(maxsize=4)
def _colormap_table() -> np.ndarray:
    """256x1x3 table: index 0 black (invalid), 1..255 the Turbo colormap, near = red."""
    ramp = np.arange(256, dtype=np.uint8)[::-1].reshape(256, 1)
    table = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO)
    table[0] = 0
    return np.ascontiguousarray(table)


@lru_cache(maxsize=16)
def _bgr_lut(mode: str, dmin: float, dmax: float, scale: float) -> np.ndarray:
    """65536x3 BGR table for a colour mode."""
    if mode == "colormap":
        levels = _level_lut(dmin, dmax, scale, 1)
        return np.ascontiguousarray(_colormap_table()[levels, 0, :])
    from encoder.hue import HUE_MODES, encode_hue_depth  # noqa: PLC0415

    raw = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    table = encode_hue_depth(raw, dmin, dmax, depth_scale=scale, mapping=HUE_MODES[mode])
    return np.ascontiguousarray(table.reshape(65536, 3))


def render_depth(
    depth: np.ndarray, mode: str, dmin: float, dmax: float, scale: float = 0.001
) -> np.ndarray:
    """Render uint16 depth to a contiguous BGR uint8 image of the same height and width."""
    if mode == "gray":
        gray = np.take(_level_lut(dmin, dmax, scale, 0), depth)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if mode not in DEPTH_MODES:
        raise ValueError(f"unknown depth mode {mode!r}; choose from {', '.join(DEPTH_MODES)}")
    return np.take(_bgr_lut(mode, dmin, dmax, scale), depth, axis=0)
