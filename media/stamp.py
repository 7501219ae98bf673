"""A machine-readable capture clock drawn into frames, so latency can be read off pixels.

The synthetic scene draws its capture time (milliseconds since the epoch, modulo 2**40)
as a row of black and white cells in the bottom-left corner: two guard cells (white,
black), 40 data bits, most significant first, and 6 bits of checksum (the number of set
data bits). Cells are 8x8 pixels on the 8-pixel grid, so JPEG and H.264 keep them
readable; a reader samples each cell's centre. `web/static/stamp.js` reads the same
layout in a browser (from a canvas copy of an <img> or <video>).
"""

from __future__ import annotations

import time

import numpy as np

CELL = 8
DATA_BITS = 40
CHECK_BITS = 6
CELLS = 2 + DATA_BITS + CHECK_BITS
MODULO = 1 << DATA_BITS


def _bits(ms: int) -> list[int]:
    data = [(ms >> (DATA_BITS - 1 - i)) & 1 for i in range(DATA_BITS)]
    count = sum(data)
    check = [(count >> (CHECK_BITS - 1 - i)) & 1 for i in range(CHECK_BITS)]
    return [1, 0, *data, *check]


def stamp_rows(height: int) -> tuple[int, int]:
    """The pixel rows [y0, y1) the stamp occupies in a frame of this height."""
    y0 = (height - 2 * CELL) // CELL * CELL
    return y0, y0 + CELL


def draw_stamp(img: np.ndarray, t: float) -> None:
    """Draw time `t` (seconds since the epoch) into a BGR or gray image, in place."""
    h, w = img.shape[:2]
    if w < CELLS * CELL or h < 3 * CELL:
        return
    y0, y1 = stamp_rows(h)
    ms = int(round(t * 1000)) % MODULO
    for i, bit in enumerate(_bits(ms)):
        img[y0:y1, i * CELL:(i + 1) * CELL] = 255 if bit else 0


def read_stamp(img: np.ndarray, now: float | None = None) -> float | None:
    """The time drawn by `draw_stamp` (seconds since the epoch), or None if none is there.

    `now` (default: the clock) resolves the 2**40 ms wrap-around to the nearest epoch.
    """
    h, w = img.shape[:2]
    if w < CELLS * CELL or h < 3 * CELL:
        return None
    y0, _ = stamp_rows(h)
    row = img[y0 + CELL // 2]
    luma = row.mean(axis=-1) if row.ndim == 2 else row
    bits = [int(luma[i * CELL + CELL // 2] >= 128) for i in range(CELLS)]
    if bits[:2] != [1, 0]:
        return None
    data = bits[2:2 + DATA_BITS]
    check = int("".join(map(str, bits[2 + DATA_BITS:])), 2)
    if check != sum(data) % (1 << CHECK_BITS):
        return None
    ms = int("".join(map(str, data)), 2)
    now_ms = int((time.time() if now is None else now) * 1000)
    base = now_ms - now_ms % MODULO
    candidates = (base - MODULO + ms, base + ms, base + MODULO + ms)
    return min(candidates, key=lambda c: abs(c - now_ms)) / 1000.0
