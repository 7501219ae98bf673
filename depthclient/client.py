"""DepthClient: /camera.json, the metric and color streams, /depth.png, point clouds."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import cv2
import numpy as np
import requests

from depthclient.stream import MultipartReader
from media.geometry import deproject, scaled_intrinsics
from media.hue import decode_hue_depth

log = logging.getLogger("depthclient")

PAIR_TRIES = 30
"""Parts read while looking for color and depth of the same frame before taking the nearest."""


class Frame(NamedTuple):
    """One frame: BGR color, depth in metres (0 = no depth), capture time (epoch seconds)."""

    color_bgr: np.ndarray
    depth_m: np.ndarray
    timestamp: float


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
        from media.hue import HUE_MODES  # noqa: PLC0415

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

    def frames(self, max_frames: int | None = None) -> Iterator[Frame]:
        """Live frames from /metric and /color, paired by frame number (newest first)."""
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
