"""DepthClient: /camera.json, the metric and color streams, /depth.png, point clouds."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import cv2
import numpy as np
import requests

from depthclient.stream import MultipartReader
from media.depth_video import DepthVideoDecoder
from media.depthcode import DepthCoder
from media.geometry import deproject, scaled_intrinsics
from media.hue import HUE_MODES, decode_hue_depth

log = logging.getLogger("depthclient")

PAIR_TRIES = 30
"""Parts read while looking for color and depth of the same frame before taking the nearest."""
SNAP_RADIUS = 3
"""Pixels around a pixel without depth searched for the nearest one with depth, as the page
does: depth-to-colour alignment leaves single-pixel holes and whole hole columns."""


class Frame(NamedTuple):
    """One frame: BGR color, depth in metres (0 = no depth), capture time (epoch seconds)."""

    color_bgr: np.ndarray
    depth_m: np.ndarray
    timestamp: float


class Point(NamedTuple):
    """A 3D point (metres, camera frame: x right, y down, z forward) and the pixel of the
    color image whose depth it was made from."""

    x: float
    y: float
    z: float
    pixel: tuple[float, float]


@functools.lru_cache(maxsize=16)
def snap_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """(dx, dy) within `radius` pixels, nearest first; at equal distance up before down,
    left before right (the page's depth.js orders them the same way)."""
    r = max(0, radius)
    return tuple(sorted(((dx, dy) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                         if dx * dx + dy * dy <= r * r),
                        key=lambda o: (o[0] * o[0] + o[1] * o[1], o[1], o[0])))


def nearest_depth(depth_m: np.ndarray, x: float, y: float,
                  radius: int = SNAP_RADIUS) -> tuple[float, float, float] | None:
    """(x, y, metres) at pixel (x, y) of `depth_m` (0 = no depth), or, where that pixel has
    none, at the nearest pixel with depth within `radius` pixels ((x, y) moved by whole
    pixels to it); None outside the image or with no depth that near."""
    h, w = depth_m.shape[:2]
    mx, my = math.floor(x), math.floor(y)
    if not (0 <= mx < w and 0 <= my < h):
        return None
    z = float(depth_m[my, mx])
    if z > 0:
        return x, y, z
    for dx, dy in snap_offsets(int(radius)):
        px, py = mx + dx, my + dy
        if 0 <= px < w and 0 <= py < h and depth_m[py, px] > 0:
            return x + dx, y + dy, float(depth_m[py, px])
    return None


def depth_at(depth_m: np.ndarray, x: float, y: float, radius: int = SNAP_RADIUS) -> float | None:
    """Metres at pixel (x, y), or at the nearest pixel with depth within `radius`; None if none."""
    hit = nearest_depth(depth_m, x, y, radius)
    return None if hit is None else hit[2]


def point_at(depth_m: np.ndarray, intrinsics: dict[str, Any], x: float, y: float,
             radius: int = SNAP_RADIUS) -> Point | None:
    """The 3D point at color pixel (x, y) (pixels of `intrinsics`' image; `depth_m` may be
    smaller), from the nearest pixel with depth within `radius` where (x, y) has none."""
    h, w = depth_m.shape[:2]
    sx, sy = w / (intrinsics.get("width") or w), h / (intrinsics.get("height") or h)
    hit = nearest_depth(depth_m, x * sx, y * sy, radius)
    if hit is None:
        return None
    px, py = hit[0] / sx, hit[1] / sy
    X, Y, Z = deproject(intrinsics, px, py, hit[2])
    return Point(float(X), float(Y), float(Z), (px, py))


def measure(depth_m: np.ndarray, intrinsics: dict[str, Any], p1: tuple[float, float],
            p2: tuple[float, float], radius: int = SNAP_RADIUS) -> float | None:
    """Metres between the 3D points at two color pixels; None if either has no depth."""
    a = point_at(depth_m, intrinsics, p1[0], p1[1], radius)
    b = point_at(depth_m, intrinsics, p2[0], p2[1], radius)
    if a is None or b is None:
        return None
    return math.dist(a[:3], b[:3])


def deproject_image(depth_m: np.ndarray, intrinsics: dict[str, Any],
                    step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """3D points (N x 3 float32 metres, camera frame: x right, y down, z forward) of every
    `step`-th pixel with depth, and the (row, column) index of each point."""
    sub = depth_m[::step, ::step]
    rows, cols = np.nonzero(sub > 0)
    z = sub[rows, cols].astype(np.float64)
    v, u = rows * step, cols * step
    x, y, z = deproject(intrinsics, u, v, z)
    return np.stack([x, y, z], axis=1).astype(np.float32), np.stack([v, u], axis=1)


class DepthClient:
    """Reads depth and color from a camera server at `url` (token or Basic auth)."""

    def __init__(self, url: str, *, token: str | None = None,
                 auth: tuple[str, str] | None = None, timeout: float = 10.0,
                 verify: bool | str = True) -> None:
        self.base = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = verify
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if auth:
            self.session.auth = auth
        self._camera: dict[str, Any] | None = None

    def _get(self, path: str, **kw: Any) -> requests.Response:
        resp = self.session.get(self.base + path, timeout=self.timeout, **kw)
        if resp.status_code != 200:
            detail = resp.text[:200]
            with contextlib.suppress(ValueError):
                detail = resp.json().get("detail", detail)
            resp.close()
            raise RuntimeError(f"{path}: HTTP {resp.status_code}: {detail}")
        return resp

    def camera(self, refresh: bool = False) -> dict[str, Any]:
        """The server's /camera.json: intrinsics, depth scale, metric coding (cached)."""
        if self._camera is None or refresh:
            self._camera = self._get("/camera.json").json()
        return self._camera

    @property
    def intrinsics(self) -> dict[str, Any]:
        return self.camera()["intrinsics"]

    def depth_png(self) -> tuple[np.ndarray, float, float]:
        """One fresh exact depth frame: (uint16 device units, depth scale, capture time)."""
        resp = self._get("/depth.png")
        depth = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16:
            raise RuntimeError("/depth.png did not decode to 16-bit depth")
        return depth, float(resp.headers["X-Depth-Scale"]), float(resp.headers["X-Timestamp"])

    def color_jpg(self) -> np.ndarray:
        """One fresh color frame (BGR)."""
        resp = self._get("/color.jpg")
        img = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise RuntimeError("/color.jpg did not decode")
        return img

    def snapshot(self) -> Frame:
        """Exact depth (/depth.png) and a color frame taken right after it."""
        depth, scale, ts = self.depth_png()
        color = self.color_jpg()
        return Frame(color, depth.astype(np.float32) * np.float32(scale), ts)

    def decode_metric(self, headers: dict[str, str], jpeg: bytes) -> np.ndarray:
        """Metres (float32, 0 = none) of one metric-stream part, from its X-Depth-* headers."""
        mode = headers.get("x-depth-mode", self.camera()["metric"]["mode"])
        if mode not in HUE_MODES:
            raise ValueError(f"the metric stream is {mode!r}, not a hue coding")
        dmin, dmax = float(headers["x-depth-min"]), float(headers["x-depth-max"])
        scale = dmax / 65000.0  # uint16 steps far finer than the coding's own
        raw = decode_hue_depth(jpeg, dmin, dmax, depth_scale=scale, mapping=HUE_MODES[mode])
        return raw.astype(np.float32) * np.float32(scale)

    def _stream(self, path: str) -> tuple[requests.Response, MultipartReader]:
        resp = self._get(path, stream=True)
        ctype = resp.headers.get("Content-Type", "")
        if "boundary=" not in ctype:
            resp.close()
            raise RuntimeError(f"{path}: not a multipart stream ({ctype})")
        return resp, MultipartReader(resp.raw, ctype.split("boundary=", 1)[1].strip())

    def frames(self, max_frames: int | None = None, source: str = "metric") -> Iterator[Frame]:
        """Live frames, depth paired with /color by frame number.

        `source="metric"`: depth from the metric stream (hue JPEG, newest frame first);
        `source="video"`: from /depth-video (10-bit H.264, decoded with PyAV, every frame
        in order from a keyframe on), a twentieth of the bytes.
        """
        if source == "video":
            yield from self._video_frames(max_frames)
            return
        if source != "metric":
            raise ValueError(f"source must be 'metric' or 'video', not {source!r}")
        route = self.camera()["metric"]["route"]
        m_resp, metric = self._stream(route)
        c_resp, color = self._stream("/color")
        try:
            n = 0
            while max_frames is None or n < max_frames:
                (mh, mj), (ch, cj) = self._pair(metric, color)
                img = cv2.imdecode(np.frombuffer(cj, np.uint8), cv2.IMREAD_COLOR)
                yield Frame(img, self.decode_metric(mh, mj), float(mh.get("x-timestamp", 0)))
                n += 1
        finally:
            m_resp.close()
            c_resp.close()

    def _video_frames(self, max_frames: int | None) -> Iterator[Frame]:
        video = self.camera()["depth_video"]
        if video is None:
            raise RuntimeError("the server runs no depth video (--no-depth-video)")
        coder = DepthCoder(float(video["min"]), float(video["max"]), 0.001)
        decoder = DepthVideoDecoder()
        v_resp, parts = self._stream(video["route"])
        c_resp, color = self._stream("/color")
        try:
            c = color.next_part()
            n = 0
            while max_frames is None or n < max_frames:
                head, unit = parts.next_part()
                for codes in decoder.decode(unit):  # every unit, or the next would not decode
                    frame_no = int(head.get("x-frame", 0))
                    while int(c[0].get("x-frame", 0)) < frame_no:
                        c = color.next_part()
                    img = cv2.imdecode(np.frombuffer(c[1], np.uint8), cv2.IMREAD_COLOR)
                    yield Frame(img, coder.decode(codes), float(head.get("x-timestamp", 0)))
                    n += 1
        finally:
            v_resp.close()
            c_resp.close()

    @staticmethod
    def _pair(metric: MultipartReader, color: MultipartReader
              ) -> tuple[tuple[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
        m, c = metric.next_part(), color.next_part()
        for _ in range(PAIR_TRIES):
            fm, fc = int(m[0].get("x-frame", 0)), int(c[0].get("x-frame", 0))
            if fm == fc:
                break
            if fc < fm:
                c = color.next_part()
            else:
                m = metric.next_part()
        else:
            log.debug("no color part of the same frame; pairing the nearest")
        return m, c

    def point_at(self, depth_m: np.ndarray, x: float, y: float,
                 radius: int = SNAP_RADIUS) -> Point | None:
        """The 3D point at color pixel (x, y) of a frame's depth (see point_at)."""
        return point_at(depth_m, self.intrinsics, x, y, radius)

    def measure(self, depth_m: np.ndarray, p1: tuple[float, float], p2: tuple[float, float],
                radius: int = SNAP_RADIUS) -> float | None:
        """Metres between the 3D points at two color pixels of a frame's depth."""
        return measure(depth_m, self.intrinsics, p1, p2, radius)

    def point_cloud(self, depth_m: np.ndarray, color_bgr: np.ndarray | None = None,
                    step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(N x 3 float32 metres, N x 3 uint8 RGB) of every `step`-th pixel with depth."""
        h, w = depth_m.shape
        intr = scaled_intrinsics(self.intrinsics, w, h)
        xyz, idx = deproject_image(depth_m, intr, step)
        if color_bgr is None:
            rgb = np.full((len(xyz), 3), 255, np.uint8)
        else:
            if color_bgr.shape[:2] != (h, w):
                color_bgr = cv2.resize(color_bgr, (w, h), interpolation=cv2.INTER_AREA)
            rgb = color_bgr[idx[:, 0], idx[:, 1], ::-1].copy()
        return xyz, rgb

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> DepthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
