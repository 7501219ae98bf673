"""Depth as 10-bit codes for video: log(depth) over [dmin, dmax], with a code for "no depth".

The mapping (docs/DEPTH_VIDEO.md), decodable anywhere with a few lines:

    code = CODE_LO + round((CODE_HI - CODE_LO) * ln(d / dmin) / ln(dmax / dmin))
    d    = dmin * exp((code - CODE_LO) * ln(dmax / dmin) / (CODE_HI - CODE_LO))

for d in metres clamped to [dmin, dmax]; invalid depth (0) is code INVALID_CODE. A decoder
reads any code below INVALID_BELOW as invalid: the gap between INVALID_CODE and CODE_LO
keeps a lossy codec's error on either side from turning one into the other. A log
mapping gives every depth the same relative step: over 0.3-10 m, 0.37 % per code.
Chroma is flat (CHROMA_CODE); only luma carries depth.

For video, `video_codes` also fills isolated holes (a pixel without depth that has depth
around it) with the farthest depth around it, as librealsense's hole-filling filter does
in its "farthest from around" mode: a D455's speckle of lone invalid pixels is noise no
lossy codec keeps, and left in it smears the depth of the pixels beside it well past 1 %
(docs/DEPTH_VIDEO.md). Regions without depth keep every pixel invalid, rim included.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

CODE_MAX = 1023
"""The largest 10-bit code."""
INVALID_CODE = 0
"""The code written for a pixel with no depth."""
CODE_LO = 64
"""The code of dmin (and of anything nearer)."""
CODE_HI = 1023
"""The code of dmax (and of anything farther)."""
INVALID_BELOW = 32
"""Decoding: a code below this is "no depth"."""
CHROMA_CODE = 512
"""Both chroma planes: neutral grey, the same code everywhere."""
SPECK_AT_MOST = 3
"""A hole is a speck (filled for video) when its 3x3 block holds at most this many holes:
the rim of a region without depth always holds more, so regions keep their edges."""
_NEIGHBOURS = np.ones((3, 3), np.uint8)


def mapping_doc(dmin: float, dmax: float) -> dict[str, Any]:
    """The mapping's parameters, as /camera.json, the stream's headers and its SEI say them."""
    return {"coding": "log10", "min": dmin, "max": dmax, "code_lo": CODE_LO,
            "code_hi": CODE_HI, "invalid_below": INVALID_BELOW}


def step_ratio(dmin: float, dmax: float) -> float:
    """The relative depth step of one code: d(code + 1) / d(code) - 1."""
    return math.exp(math.log(dmax / dmin) / (CODE_HI - CODE_LO)) - 1.0


class DepthCoder:
    """Depth (device units, uint16) to 10-bit codes and codes back to metres, by table."""

    def __init__(self, dmin: float, dmax: float, depth_scale: float) -> None:
        if not 0 < dmin < dmax:
            raise ValueError(f"need 0 < dmin < dmax, not {dmin}, {dmax}")
        self.dmin, self.dmax, self.depth_scale = dmin, dmax, depth_scale
        units = np.arange(65536, dtype=np.float64) * depth_scale
        with np.errstate(divide="ignore"):
            pos = np.log(np.clip(units, dmin, dmax) / dmin) / math.log(dmax / dmin)
        codes = np.rint(CODE_LO + (CODE_HI - CODE_LO) * pos).astype(np.uint16)
        codes[0] = INVALID_CODE
        self._encode = codes
        ladder = dmin * np.exp((np.arange(CODE_MAX + 1) - CODE_LO) * math.log(dmax / dmin)
                               / (CODE_HI - CODE_LO))
        ladder[:INVALID_BELOW] = 0.0
        self._decode = np.clip(ladder, 0.0, dmax).astype(np.float32)
        self._decode[INVALID_BELOW:CODE_LO] = dmin

    def encode(self, depth: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """uint16 depth in device units (0 = invalid) to uint16 codes 0..1023."""
        return np.take(self._encode, depth, out=out)

    def video_codes(self, depth: np.ndarray) -> np.ndarray:
        """`encode`, then isolated holes filled with the farthest code around them."""
        codes = self.encode(depth)
        holes = (codes == INVALID_CODE).view(np.uint8)
        if holes.any():
            crowd = cv2.boxFilter(holes, -1, (3, 3), normalize=False,
                                  borderType=cv2.BORDER_CONSTANT)
            lone = holes.view(bool) & (crowd <= SPECK_AT_MOST)
            codes[lone] = cv2.dilate(codes, _NEIGHBOURS)[lone]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (any integer type, 10-bit values) to float32 metres, 0 where invalid."""
        return np.take(self._decode, np.minimum(codes, CODE_MAX))
