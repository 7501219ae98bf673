"""Depth rendering through the BGRX tables, and the encoder process's use of it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from encoder.process import FrameEncoder
from media.depth import DEPTH_MODES, render_depth, render_depth_bgrx
from media.filters import FilterChain
from media.hue import HUE_MODES, encode_hue_depth
from media.jpeg import JpegCodec
from pipeline.config import Config
from pipeline.shm import FLAG_HAS_DEPTH, SlotMeta

EVERY_RAW = np.arange(65536, dtype=np.uint16).reshape(256, 256)
RANGES = ((0.3, 6.0, 0.001), (0.3, 10.0, 0.001), (0.5, 3.0, 0.00025))


def reference(depth: np.ndarray, mode: str, dmin: float, dmax: float, scale: float) -> np.ndarray:
    """Each mode's BGR picture from its definition, without the lookup tables."""
    if mode in HUE_MODES:
        return encode_hue_depth(depth, dmin, dmax, depth_scale=scale, mapping=HUE_MODES[mode])
    frac = np.clip((depth * scale - dmin) / (dmax - dmin), 0.0, 1.0)
    if mode == "gray":
        level = np.round(frac * 255).astype(np.uint8)
        level[depth == 0] = 0
        return cv2.cvtColor(level, cv2.COLOR_GRAY2BGR)
    level = np.round(1 + frac * 254).astype(np.uint8)
    img = cv2.applyColorMap(255 - level, cv2.COLORMAP_TURBO)
    img[depth == 0] = 0
    return img


@pytest.mark.parametrize("mode", DEPTH_MODES)
def test_every_raw_value_renders_as_its_mode_defines(mode: str) -> None:
    for dmin, dmax, scale in RANGES:
        want = reference(EVERY_RAW, mode, dmin, dmax, scale)
        bgrx = render_depth_bgrx(EVERY_RAW, mode, dmin, dmax, scale)
        assert bgrx.shape == (256, 256, 4) and bgrx.dtype == np.uint8
        assert (bgrx[:, :, :3] == want).all() and (bgrx[:, :, 3] == 0).all()
        bgr = render_depth(EVERY_RAW, mode, dmin, dmax, scale)
        assert bgr.shape == (256, 256, 3) and bgr.flags.c_contiguous
        assert (bgr == want).all()


def test_rows_render_into_a_reused_buffer_in_slices() -> None:
    depth = np.random.default_rng(3).integers(0, 9000, (48, 64), dtype=np.uint16)
    whole = render_depth_bgrx(depth, "hue-log", 0.3, 6.0)
    out = np.full((48, 64, 4), 7, np.uint8)
    assert render_depth_bgrx(depth[:20], "hue-log", 0.3, 6.0, out=out[:20]) is not None
    render_depth_bgrx(depth[20:], "hue-log", 0.3, 6.0, out=out[20:])
    assert (out == whole).all()
    with pytest.raises(ValueError, match="out must be"):
        render_depth_bgrx(depth, "gray", 0.3, 6.0, out=np.empty((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown depth mode"):
        render_depth_bgrx(depth, "sepia", 0.3, 6.0)
    with pytest.raises(TypeError):
        render_depth_bgrx(depth.astype(np.int32), "gray", 0.3, 6.0)


@pytest.mark.parametrize("backend", ["turbojpeg", "opencv"])
def test_bgrx_encodes_to_the_same_jpeg_as_bgr(backend: str) -> None:
    src = SyntheticSource(320, 240, 30)
    src.open()
    depth = src.read(1.0).depth
    codec = JpegCodec(backend)
    for mode in ("colormap", "hue-log"):
        bgrx = render_depth_bgrx(depth, mode, 0.3, 6.0)
        bgr = np.ascontiguousarray(bgrx[:, :, :3])
        for quality, sampling in ((80, "420"), (90, "444")):
            assert codec.encode(bgrx, quality, sampling) == codec.encode(bgr, quality, sampling)


def _slot(color: np.ndarray, depth: np.ndarray) -> tuple[SlotMeta, memoryview]:
    h, w = depth.shape
    payload = memoryview(bytearray(color.tobytes() + depth.tobytes()))
    meta = SlotMeta(1, 1, 0.0, 0.0, 0.0, 0.001, w, h, color.nbytes, depth.nbytes,
                    FLAG_HAS_DEPTH)
    return meta, payload


@pytest.mark.parametrize("mode", ["gray", "hue-log"])
def test_frame_encoder_sends_the_rendered_depth(mode: str) -> None:
    src = SyntheticSource(640, 480, 30)
    src.open()
    frame = src.read(1.0)
    cfg = Config(depth_mode=mode, depth_quality=90, depth_subsampling="420")
    codec = JpegCodec("turbojpeg")
    meta, view = _slot(frame.color, frame.depth)
    with ThreadPoolExecutor(max_workers=3) as pool:
        enc = FrameEncoder(cfg, codec, pool, FilterChain([]))
        first = enc.encode(meta, view, ["color", "depth", "combined"])
        again = enc.encode(meta, view, ["depth"])  # into the reused buffer
    bgr = render_depth(frame.depth, mode, cfg.depth_min, cfg.depth_max)
    assert first["depth"] == (codec.encode(bgr, 90, "420"), 640, 480)
    assert again["depth"] == first["depth"]
    assert first["color"] == (codec.encode(frame.color, cfg.quality, "420"), 640, 480)
    combined = np.hstack((frame.color, bgr))
    assert first["combined"] == (codec.encode(combined, cfg.quality, "420"), 1280, 480)
