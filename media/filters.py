"""OpenCV filters applied to the color image before JPEG encoding, switchable at run time.

Every filter takes a BGR uint8 HxWx3 image and returns a new BGR uint8 HxWx3 image (gray
results are expanded back to three channels) and never writes into its input, which may
be a view on shared memory. Output size may differ from input size: rotate90/rotate270
swap width and height and resize changes both. A chain entry is a filter name, optionally
with a parameter: "blur=15", "threshold=128", "resize=640x360" or "resize=0.5".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

Image = np.ndarray
Filter = Callable[[Image], Image]

DRAW_COLOR_CONTOURS = (0, 255, 0)
DRAW_COLOR_CORNERS = (0, 255, 255)
DRAW_COLOR_LINES = (0, 0, 255)

GRABCUT_MAX_SIDE = 160
GRABCUT_MARGIN = 0.15
GRABCUT_ITERATIONS = 2


@dataclass(frozen=True)
class FilterSpec:
    """A registered filter: what it does, its cost class, and how to build one instance."""

    name: str
    description: str
    slow: bool
    stateful: bool
    param: str | None
    factory: Callable[[str | None], Filter] = field(repr=False, compare=False)


def _to_gray(img: Image) -> Image:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _to_bgr(gray: Image) -> Image:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def gray(img: Image) -> Image:
    """Luma only, as three equal channels."""
    return _to_bgr(_to_gray(img))


def blur(img: Image, ksize: int = 9) -> Image:
    """Gaussian blur with an odd square kernel (sigma derived from the size)."""
    return cv2.GaussianBlur(img, (ksize, ksize), 0)


def threshold(img: Image, level: int | None = None) -> Image:
    """Binary 0/255 image of the luma: Otsu's automatic level, or a fixed one."""
    g = _to_gray(img)
    if level is None:
        _, out = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    else:
        _, out = cv2.threshold(g, level, 255, cv2.THRESH_BINARY)
    return _to_bgr(out)


def edges(img: Image) -> Image:
    """Canny edges (white on black)."""
    return _to_bgr(cv2.Canny(_to_gray(img), 80, 160))


def contours(img: Image) -> Image:
    """Outer contours of the Otsu-thresholded luma, drawn in green over the frame."""
    g = _to_gray(img)
    _, binary = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    found, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = max(16.0, 1e-4 * g.shape[0] * g.shape[1])
    keep = [c for c in found if cv2.contourArea(c) >= min_area]
    out = img.copy()
    cv2.drawContours(out, keep, -1, DRAW_COLOR_CONTOURS, 2)
    return out


def corners(img: Image) -> Image:
    """Shi-Tomasi corners (goodFeaturesToTrack) circled in yellow over the frame."""
    g = _to_gray(img)
    h, w = g.shape
    pts = cv2.goodFeaturesToTrack(g, maxCorners=200, qualityLevel=0.05,
                                  minDistance=max(8, min(h, w) // 60), blockSize=5)
    out = img.copy()
    if pts is not None:
        for x, y in pts.reshape(-1, 2):
            cv2.circle(out, (int(round(x)), int(round(y))), 5, DRAW_COLOR_CORNERS, 2)
    return out


def lines(img: Image) -> Image:
    """Straight segments (probabilistic Hough on Canny edges) drawn in red over the frame."""
    g = _to_gray(img)
    e = cv2.Canny(g, 80, 160)
    min_len = max(20, min(g.shape) // 12)
    found = cv2.HoughLinesP(e, 1, np.pi / 180, threshold=60, minLineLength=min_len,
                            maxLineGap=5)
    out = img.copy()
    if found is not None:
        for x1, y1, x2, y2 in found.reshape(-1, 4):
            cv2.line(out, (int(x1), int(y1)), (int(x2), int(y2)), DRAW_COLOR_LINES, 2)
    return out


def laplacian(img: Image) -> Image:
    """Absolute 3x3 Laplacian of the luma: zero on flat areas, bright on edges and texture."""
    lap = cv2.Laplacian(_to_gray(img), cv2.CV_16S, ksize=3)
    return _to_bgr(cv2.convertScaleAbs(lap))


def rotate90(img: Image) -> Image:
    """Rotate 90 degrees clockwise (width and height swap)."""
    return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)


def rotate180(img: Image) -> Image:
    """Rotate 180 degrees."""
    return cv2.rotate(img, cv2.ROTATE_180)


def rotate270(img: Image) -> Image:
    """Rotate 270 degrees clockwise, i.e. 90 counter-clockwise (width and height swap)."""
    return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)


def resize(img: Image, size: tuple[int, int] | None = None, scale: float = 0.5) -> Image:
    """Resize to size=(width, height), or by a scale factor (default half size)."""
    h, w = img.shape[:2]
    if size is None:
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    shrinking = size[0] * size[1] < w * h
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def grabcut(img: Image) -> Image:
    """SLOW: GrabCut foreground of a centered rectangle; background pixels set to black.

    The segmentation runs on a copy scaled down to at most GRABCUT_MAX_SIDE pixels per side
    (outside the central rectangle is taken as background); the mask is scaled back up.
    """
    h, w = img.shape[:2]
    f = min(1.0, GRABCUT_MAX_SIDE / max(h, w))
    small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))),
                       interpolation=cv2.INTER_AREA) if f < 1.0 else img
    sh, sw = small.shape[:2]
    mx, my = int(sw * GRABCUT_MARGIN), int(sh * GRABCUT_MARGIN)
    rect = (mx, my, sw - 2 * mx, sh - 2 * my)
    mask = np.zeros((sh, sw), np.uint8)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(small, mask, rect, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    except cv2.error as exc:
        log.debug("grabcut failed on a %dx%d frame: %s", w, h, exc)
        return np.zeros_like(img)
    fg = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    if fg.shape != (h, w):
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.bitwise_and(img, img, mask=fg)


class BackgroundSubtractor:
    """Stateful MOG2 background subtraction: white where the frame differs from its model.

    The model persists across frames and restarts when the frame size changes.
    """

    def __init__(self) -> None:
        self._mog: Any = None
        self._shape: tuple[int, ...] | None = None

    def reset(self) -> None:
        """Forget the learned background."""
        self._mog, self._shape = None, None

    def __call__(self, img: Image) -> Image:
        """Foreground mask of this frame (0/255 on three channels); updates the model."""
        if self._mog is None or img.shape != self._shape:
            self._mog = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=16,
                                                           detectShadows=False)
            self._shape = img.shape
        return _to_bgr(self._mog.apply(img))


def _no_param(fn: Filter) -> Callable[[str | None], Filter]:
    def make(param: str | None) -> Filter:
        if param is not None:
            raise ValueError("takes no parameter")
        return fn

    return make


def _make_blur(param: str | None) -> Filter:
    if param is None:
        return blur
    try:
        k = int(param)
    except ValueError:
        k = 0
    if k < 1 or k > 99 or k % 2 == 0:
        raise ValueError("kernel size must be an odd integer 1..99")
    return lambda img: blur(img, k)


def _make_threshold(param: str | None) -> Filter:
    if param is None or param == "otsu":
        return threshold
    try:
        level = int(param)
    except ValueError:
        level = -1
    if not 0 <= level <= 255:
        raise ValueError("level must be 'otsu' or an integer 0..255")
    return lambda img: threshold(img, level)


def _make_resize(param: str | None) -> Filter:
    if param is None:
        return resize
    if "x" in param:
        try:
            w, h = (int(v) for v in param.split("x"))
        except ValueError:
            w = h = 0
        if not (1 <= w <= 7680 and 1 <= h <= 4320):
            raise ValueError("size must be WIDTHxHEIGHT within 1x1..7680x4320")
        return lambda img: resize(img, (w, h))
    try:
        scale = float(param)
    except ValueError:
        scale = 0.0
    if not 0.05 <= scale <= 4.0:
        raise ValueError("expected WIDTHxHEIGHT or a scale factor 0.05..4")
    return lambda img: resize(img, scale=scale)


def _make_bgsub(param: str | None) -> Filter:
    if param is not None:
        raise ValueError("takes no parameter")
    return BackgroundSubtractor()


FILTERS: dict[str, FilterSpec] = {
    s.name: s
    for s in (
        FilterSpec("gray", "grayscale", False, False, None, _no_param(gray)),
        FilterSpec("blur", "Gaussian blur", False, False, "odd kernel size (default 9)",
                   _make_blur),
        FilterSpec("threshold", "black/white at Otsu's level or a fixed one", False, False,
                   "level 0..255 (default otsu)", _make_threshold),
        FilterSpec("edges", "Canny edges", False, False, None, _no_param(edges)),
        FilterSpec("contours", "outlines of bright regions, drawn in green", False, False,
                   None, _no_param(contours)),
        FilterSpec("corners", "Shi-Tomasi corners circled in yellow", False, False, None,
                   _no_param(corners)),
        FilterSpec("lines", "straight segments (Hough) drawn in red", False, False, None,
                   _no_param(lines)),
        FilterSpec("laplacian", "Laplacian (edges and texture)", False, False, None,
                   _no_param(laplacian)),
        FilterSpec("bgsub", "moving foreground in white (MOG2 background model)", False, True,
                   None, _make_bgsub),
        FilterSpec("rotate90", "rotate 90 degrees clockwise (size changes)", False, False,
                   None, _no_param(rotate90)),
        FilterSpec("rotate180", "rotate 180 degrees", False, False, None, _no_param(rotate180)),
        FilterSpec("rotate270", "rotate 90 degrees counter-clockwise (size changes)", False,
                   False, None, _no_param(rotate270)),
        FilterSpec("resize", "resize, half size by default (size changes)", False, False,
                   "WIDTHxHEIGHT or scale factor (default 0.5)", _make_resize),
        FilterSpec("grabcut", "SLOW (~10-20 ms a frame): GrabCut foreground of the centre",
                   True, False, None, _no_param(grabcut)),
    )
}


def _split_entry(entry: str) -> tuple[str, str | None]:
    name, sep, param = entry.partition("=")
    return name.strip().lower(), (param.strip().lower() if sep else None)


def _build(entry: str) -> Filter:
    """One filter instance for a chain entry; ValueError naming the entry if it is invalid."""
    name, param = _split_entry(entry)
    spec = FILTERS.get(name)
    if spec is None:
        raise ValueError(f"unknown filter {name!r}; valid filters: {', '.join(FILTERS)}")
    try:
        return spec.factory(param)
    except ValueError as exc:
        raise ValueError(f"filter {entry.strip()!r}: {exc}") from None


def _normalise(entry: str) -> str:
    name, param = _split_entry(entry)
    return name if param is None else f"{name}={param}"


def parse_filter_list(text: str) -> list[str]:
    """Split "gray,blur=15" into validated, normalised entries; ValueError on a bad one."""
    entries = [_normalise(part) for part in text.split(",") if part.strip()]
    for entry in entries:
        _build(entry)
    return entries


def filter_catalog() -> list[dict[str, Any]]:
    """The registry as JSON-friendly dicts (for a UI listing the filters)."""
    return [{"name": s.name, "description": s.description, "slow": s.slow,
             "stateful": s.stateful, "param": s.param} for s in FILTERS.values()]


def _as_bgr(img: Image) -> Image:
    if img.dtype != np.uint8:
        raise ValueError(f"filters take uint8 images, got {img.dtype}")
    if img.ndim == 2:
        return _to_bgr(img)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"filters take HxWx3 images, got shape {img.shape}")
    return img


class FilterChain:
    """An ordered list of filters applied to each frame; can be changed while in use.

    `apply` may run in one thread while `set` runs in another: it works on the list of
    filters current when it started. Output size may differ from input size.
    """

    def __init__(self, names: Sequence[str] | str = ()) -> None:
        self._lock = threading.Lock()
        self._stages: list[tuple[str, Filter]] = []
        self.set(names)

    @property
    def names(self) -> list[str]:
        """The current entries, in the order they are applied."""
        return [name for name, _ in self._stages]

    def set(self, names: Sequence[str] | str) -> None:
        """Replace the chain; stateful filters staying in it keep their state, others reset.

        Raises ValueError (and leaves the chain unchanged) if an entry is invalid.
        """
        if isinstance(names, str):
            names = names.split(",")
        entries = [_normalise(n) for n in names if n.strip()]
        with self._lock:
            spare: dict[str, list[Filter]] = {}
            for entry, fn in self._stages:
                if FILTERS[_split_entry(entry)[0]].stateful:
                    spare.setdefault(entry, []).append(fn)
            stages = []
            for entry in entries:
                kept = spare.get(entry)
                stages.append((entry, kept.pop(0) if kept else _build(entry)))
            self._stages = stages
        if entries:
            log.info("filters: %s", ",".join(entries))

    def apply(self, img: Image) -> Image:
        """Run the frame through every filter in order; returns a BGR uint8 HxWx3 image."""
        stages = self._stages
        if not stages:
            return img
        out = _as_bgr(img)
        for _, fn in stages:
            out = fn(out)
        return out
