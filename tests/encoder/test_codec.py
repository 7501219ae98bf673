"""JPEG codecs and depth rendering."""

from __future__ import annotations

import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from encoder.codec import JpegCodec, pick_backend
from encoder.depth import render_depth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    src = SyntheticSource(640, 480, 30)
    src.open()
    return src.read(1.0).color


def test_libjpeg_turbo_is_picked_here() -> None:
    assert pick_backend("auto") == "turbojpeg"
    assert pick_backend("opencv") == "opencv"


@pytest.mark.parametrize("backend", ["turbojpeg", "opencv"])
def test_encode_decodes_back_close_to_the_original(backend: str, scene: np.ndarray) -> None:
    codec = JpegCodec(backend)
    jpeg = codec.encode(scene, 80)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    back = codec.decode(jpeg)
    assert back.shape == scene.shape
    assert psnr(scene, back) > 30
    better = codec.decode(codec.encode(scene, 95, "444"))
    assert psnr(scene, better) > psnr(scene, back)
    assert len(codec.encode(scene, 30)) < len(jpeg)


def test_codecs_agree_on_colour_order(scene: np.ndarray) -> None:
    tj, cv = JpegCodec("turbojpeg"), JpegCodec("opencv")
    assert psnr(cv.decode(tj.encode(scene, 90)), scene) > 32
    assert psnr(tj.decode(cv.encode(scene, 90)), scene) > 32


def test_corrupt_jpeg_is_a_value_error() -> None:
    for backend in ("turbojpeg", "opencv"):
        with pytest.raises(ValueError):
            JpegCodec(backend).decode(b"\xff\xd8garbage")


def test_gray_depth_is_linear_over_the_range_and_invalid_is_black() -> None:
    depth = np.array([[0, 300, 3150, 6000, 9000, 100]], np.uint16)
    img = render_depth(depth, "gray", 0.3, 6.0)
    assert img.shape == (1, 6, 3)
    levels = img[0, :, 0].tolist()
    assert levels == [0, 0, 128, 255, 255, 0]
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()


def test_colormap_depth_near_is_warm_far_is_cool_invalid_black() -> None:
    depth = np.array([[0, 400, 5800]], np.uint16)
    img = render_depth(depth, "colormap", 0.3, 6.0).astype(int)
    assert img[0, 0].tolist() == [0, 0, 0]
    near_b, _, near_r = img[0, 1]
    far_b, _, far_r = img[0, 2]
    assert near_r > near_b and far_b > far_r
    assert img[0, 1].sum() > 0 and img[0, 2].sum() > 0


def test_depth_scale_is_honoured() -> None:
    mm = np.array([[3150]], np.uint16)
    quarter_mm = np.array([[12600]], np.uint16)
    a = render_depth(mm, "gray", 0.3, 6.0, 0.001)
    b = render_depth(quarter_mm, "gray", 0.3, 6.0, 0.00025)
    assert a.tolist() == b.tolist()
