"""The "hue" depth mode: depth packed into a fully saturated 1530-step hue ramp.

Implements "depth image compression by colorization" (Intel RealSense white paper): depth
(uniform), disparity (inverse) or log(depth) (log) over [dmin, dmax] is quantised onto the
hue circle red -> yellow -> green -> cyan -> blue -> magenta -> (almost) red, which survives
JPEG far better than a grey ramp. The log mapping gives every depth the same relative step
(0.24 % over 0.3-10 m), which keeps decoded depth within 1 % across the whole range. A guard
band of HUE_GUARD steps either side of the point where the circle closes keeps JPEG noise
from flipping dmax into dmin. Invalid depth (0) is black. See docs/DEPTH_HUE.md.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

HUE_STEPS = 1530
"""Distinct colours on the ramp: 6 segments of 255 steps (index 0..1529)."""

HUE_GUARD = 24
"""Hue steps left unused at each side of the red wrap point (0 gives the white paper's map)."""
DEPTH_LEVELS = HUE_STEPS - 2 * HUE_GUARD
"""Distinct depth levels: index HUE_GUARD is one end of [dmin, dmax], 1529 - HUE_GUARD the other."""

_SEG = 255
_INVALID = HUE_STEPS + 1  # decode-table slot that yields depth 0
MIN_VALUE = 96
"""Decoding: a pixel whose brightest channel is below this is invalid (black, depth 0)."""
MIN_SATURATION = 0.5
"""Decoding: a pixel whose saturation (max-min)/max is below this is invalid (hue unreliable)."""

HUE_MAPPINGS = ("uniform", "inverse", "log")
"""How depth is spread over the ramp: linear in depth, in disparity 1/d, or in log(depth)."""
HUE_MODES = {"hue": "uniform", "hue-inverse": "inverse", "hue-log": "log"}
"""X-Depth-Mode header value -> mapping to pass to decode_hue_depth."""

_tls = threading.local()


def _mapping_name(mapping: str, inverse: bool) -> str:
    """Resolve `mapping` and the legacy `inverse` flag (True means "inverse") to one name."""
    if mapping not in HUE_MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; choose from {', '.join(HUE_MAPPINGS)}")
    if inverse:
        if mapping not in ("uniform", "inverse"):
            raise ValueError(f"inverse=True contradicts mapping={mapping!r}")
        return "inverse"
    return mapping


def _check_range(dmin: float, dmax: float, depth_scale: float) -> None:
    if not (dmin > 0 and dmax > dmin and depth_scale > 0):
        raise ValueError(
            f"need 0 < dmin < dmax and depth_scale > 0 (got {dmin}, {dmax}, {depth_scale})"
        )


@lru_cache(maxsize=1)
def hue_colors() -> np.ndarray:
    """The ramp as a 1530x3 BGR uint8 table: row i is the colour of hue index i."""
    idx = np.arange(HUE_STEPS)
    seg, t = idx // _SEG, idx % _SEG
    up, down, full, zero = t, _SEG - t, np.full_like(t, 255), np.zeros_like(t)
    r = np.select([seg == 0, seg == 1, seg == 4, seg == 5], [full, down, up, full], zero)
    g = np.select([seg == 0, seg == 1, seg == 2, seg == 3], [up, full, full, down], zero)
    b = np.select([seg == 2, seg == 3, seg == 4, seg == 5], [up, full, full, down], zero)
    table = np.stack([b, g, r], axis=1).astype(np.uint8)
    table.setflags(write=False)
    return table


def _normalised(metres: np.ndarray, dmin: float, dmax: float, mapping: str) -> np.ndarray:
    """Position in [0, 1] of each depth on the ramp (clipped); inverse runs far to near."""
    with np.errstate(divide="ignore"):
        if mapping == "inverse":
            pos = (1.0 / metres - 1.0 / dmax) / (1.0 / dmin - 1.0 / dmax)
        elif mapping == "log":
            pos = np.log(metres / dmin) / np.log(dmax / dmin)
        else:
            pos = (metres - dmin) / (dmax - dmin)
    return np.clip(pos, 0.0, 1.0)


def _metres(frac: np.ndarray, dmin: float, dmax: float, mapping: str) -> np.ndarray:
    """Depth in metres at ramp positions `frac` in [0, 1]: the inverse of _normalised."""
    if mapping == "inverse":
        return 1.0 / (1.0 / dmax + frac * (1.0 / dmin - 1.0 / dmax))
    if mapping == "log":
        return dmin * np.exp(frac * np.log(dmax / dmin))
    return dmin + frac * (dmax - dmin)


def hue_index_lut(dmin: float, dmax: float, depth_scale: float, inverse: bool = False, *,
                  mapping: str = "uniform") -> np.ndarray:
    """int16 hue index (0..1529) for every raw uint16 depth value; -1 marks invalid (0)."""
    return _index_lut(float(dmin), float(dmax), float(depth_scale), _mapping_name(mapping, inverse))


@lru_cache(maxsize=16)
def _index_lut(dmin: float, dmax: float, depth_scale: float, mapping: str) -> np.ndarray:
    _check_range(dmin, dmax, depth_scale)
    metres = np.arange(65536, dtype=np.float64) * depth_scale
    pos = _normalised(metres, dmin, dmax, mapping)
    lut = (HUE_GUARD + np.rint(pos * (DEPTH_LEVELS - 1))).astype(np.int16)
    lut[0] = -1
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=16)
def _encode_lut(dmin: float, dmax: float, depth_scale: float, mapping: str) -> np.ndarray:
    """65536x3 BGR table: colour of every raw depth value (black for 0)."""
    index = _index_lut(dmin, dmax, depth_scale, mapping)
    lut = np.ascontiguousarray(hue_colors()[np.maximum(index, 0)])
    lut[0] = 0
    lut.setflags(write=False)
    return lut


def hue_depth_table(dmin: float, dmax: float, depth_scale: float, inverse: bool = False, *,
                    mapping: str = "uniform") -> np.ndarray:
    """uint16 depth (in depth_scale units) that each hue index 0..1529 decodes to.

    Two extra slots follow: 1530 (the ramp wrapping round to index 0) and 1531 (invalid, 0).
    Indices in the guard band decode to the nearer end of the range round the circle.
    """
    return _depth_table(
        float(dmin), float(dmax), float(depth_scale), _mapping_name(mapping, inverse)
    )


@lru_cache(maxsize=16)
def _depth_table(dmin: float, dmax: float, depth_scale: float, mapping: str) -> np.ndarray:
    _check_range(dmin, dmax, depth_scale)
    level = np.arange(HUE_STEPS + 1) - HUE_GUARD
    level[HUE_STEPS] = -HUE_GUARD  # 1530 is index 0 reached the other way round
    frac = np.clip(level, 0, DEPTH_LEVELS - 1).astype(np.float64) / (DEPTH_LEVELS - 1)
    metres = _metres(frac, dmin, dmax, mapping)
    raw = np.clip(np.rint(metres / depth_scale), 1, 65535).astype(np.uint16)
    table = np.concatenate([raw, np.zeros(1, np.uint16)])
    table.setflags(write=False)
    return table


def encode_hue_depth(depth: np.ndarray, dmin: float, dmax: float, depth_scale: float = 0.001,
                     inverse: bool = False, *, mapping: str = "uniform") -> np.ndarray:
    """Colourise uint16 depth (HxW, raw units of depth_scale metres) to a BGR uint8 HxWx3 image.

    `mapping` is "uniform", "inverse" or "log"; `inverse=True` is the older spelling of
    mapping="inverse". Depth outside [dmin, dmax] is clipped to the ends of the ramp;
    0 (invalid) is black.
    """
    if depth.dtype != np.uint16:
        raise TypeError(f"depth must be uint16, got {depth.dtype}")
    name = _mapping_name(mapping, inverse)
    lut = _encode_lut(float(dmin), float(dmax), float(depth_scale), name)
    return np.take(lut, depth, axis=0)


def _jpeg_to_bgr(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Decode JPEG bytes to BGR with libjpeg-turbo when available, else OpenCV."""
    tj = getattr(_tls, "tj", None)
    if tj is None:
        try:
            import turbojpeg

            tj = (turbojpeg.TurboJPEG(), turbojpeg.TJPF_BGR)
        except (ImportError, OSError, RuntimeError) as exc:
            log.debug("libjpeg-turbo unavailable (%s); decoding with OpenCV", exc)
            tj = False
        _tls.tj = tj
    if tj:
        handle: Any = tj[0]
        return handle.decode(bytes(data), pixel_format=tj[1])
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a decodable JPEG")
    return img


def hue_index(bgr: np.ndarray) -> np.ndarray:
    """Hue index 0..1530 of each BGR pixel (1530 = wrapped round to 0), 1531 where invalid.

    The position inside a segment is (mid - min) / (max - min), i.e. the exact HSV hue, so
    a pixel darkened or desaturated by JPEG still decodes to its hue; dark or grey pixels
    are invalid.
    """
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 BGR image, got {bgr.dtype} {bgr.shape}")
    hsv = cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2HSV)
    index = (hsv[:, :, 0] * np.float32(HUE_STEPS / 360.0) + np.float32(0.5)).astype(np.int16)
    invalid = (hsv[:, :, 2] < MIN_VALUE) | (hsv[:, :, 1] < MIN_SATURATION)
    index[invalid] = _INVALID
    return index


def decode_hue_depth(
    jpeg_or_bgr: bytes | bytearray | memoryview | np.ndarray,
    dmin: float,
    dmax: float,
    inverse: bool = False,
    depth_scale: float = 0.001,
    *,
    mapping: str = "uniform",
) -> np.ndarray:
    """Recover uint16 depth (units of depth_scale, default mm) from a hue-coded JPEG or BGR.

    dmin, dmax and mapping must match the encoder (they travel in the X-Depth-* headers;
    HUE_MODES turns X-Depth-Mode into the mapping). `inverse=True` means mapping="inverse".
    Invalid pixels (dark or unsaturated) come back as 0.
    """
    name = _mapping_name(mapping, inverse)
    bgr = jpeg_or_bgr if isinstance(jpeg_or_bgr, np.ndarray) else _jpeg_to_bgr(jpeg_or_bgr)
    table = _depth_table(float(dmin), float(dmax), float(depth_scale), name)
    return np.take(table, hue_index(bgr))


def deflying_filter(
    depth: np.ndarray,
    threshold: float = 0.1,
    min_support: int = 3,
    ksize: int = 5,
    fill_holes: bool = False,
) -> np.ndarray:
    """Remove flying pixels (wrong in-between depths that JPEG ringing leaves at edges).

    A valid pixel is flying when fewer than `min_support` of its 8 neighbours lie within
    `threshold` (relative) of it; it is snapped to the nearer of its neighbours' minimum and
    maximum, so an edge stays sharp and in place. With `fill_holes`, an invalid pixel whose
    ksize x ksize window is mostly valid takes the window median; where most are invalid it
    stays 0. Valid, supported pixels are returned untouched. A real structure one pixel wide
    has only two supporting neighbours and is treated as flying. ~13 ms at 1280x720.
    """
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise TypeError("depth must be a uint16 HxW array")
    if ksize not in (3, 5):
        raise ValueError("ksize must be 3 or 5 (OpenCV's uint16 median limit)")
    src = depth.astype(np.float32)
    valid = depth > 0
    pad = cv2.copyMakeBorder(src, 1, 1, 1, 1, cv2.BORDER_REFLECT_101)
    h, w = depth.shape
    tol = src * np.float32(threshold)
    support = np.zeros(depth.shape, np.uint8)
    lo = np.full(depth.shape, np.inf, np.float32)
    hi = np.zeros(depth.shape, np.float32)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            nb = pad[dy : dy + h, dx : dx + w]
            nb_valid = nb > 0
            support += (nb_valid & (np.abs(nb - src) <= tol)).view(np.uint8)
            np.minimum(lo, np.where(nb_valid, nb, np.inf), out=lo)
            np.maximum(hi, nb, out=hi)
    flying = valid & (support < min_support) & (hi > 0)
    out = depth.copy()
    snap = np.where(src - lo <= hi - src, lo, hi)
    out[flying] = snap[flying].astype(np.uint16)
    if fill_holes:
        med = cv2.medianBlur(depth, ksize)
        holes = ~valid & (med > 0)
        out[holes] = med[holes]
    return out


def hue_headers(
    dmin: float, dmax: float, inverse: bool = False, *, mapping: str = "uniform"
) -> dict[str, str]:
    """HTTP headers that tell a client how to decode a hue-coded depth part."""
    name = _mapping_name(mapping, inverse)
    mode = next(m for m, n in HUE_MODES.items() if n == name)
    return {
        "X-Depth-Mode": mode,
        "X-Depth-Min": str(float(dmin)),
        "X-Depth-Max": str(float(dmax)),
        "X-Depth-Units": "m",
    }
