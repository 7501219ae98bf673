"""JPEG codecs and depth rendering."""

from __future__ import annotations

import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from media.depth import render_depth
from media.jpeg import JpegCodec, pick_backend


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


def test_turbojpeg_encode_gives_pyturbojpegs_bytes_for_every_layout(scene: np.ndarray) -> None:
    from turbojpeg import (  # noqa: PLC0415
        TJPF_BGR,
        TJPF_GRAY,
        TJSAMP_420,
        TJSAMP_444,
        TJSAMP_GRAY,
        TurboJPEG,
    )

    tj, codec = TurboJPEG(), JpegCodec("turbojpeg")
    gray = np.ascontiguousarray(scene[:, :, 1])
    assert codec.encode(gray, 85) == tj.encode(gray[:, :, None], 85, TJPF_GRAY, TJSAMP_GRAY)
    for quality, samp, name in ((80, TJSAMP_420, "420"), (95, TJSAMP_444, "444")):
        want = tj.encode(scene, quality, TJPF_BGR, samp)
        assert codec.encode(scene, quality, name) == want
        bgrx = np.zeros((*scene.shape[:2], 4), np.uint8)
        bgrx[:, :, :3] = scene
        assert codec.encode(bgrx, quality, name) == want
        assert codec.encode(bgrx[:, :, :3], quality, name) == want  # strided view
        wide = np.zeros((scene.shape[0], scene.shape[1] + 16, 3), np.uint8)
        wide[:, :-16] = scene
        assert codec.encode(wide[:, :-16], quality, name) == want  # padded rows
        flipped = scene[::-1]
        assert codec.encode(flipped, quality, name) == tj.encode(
            np.ascontiguousarray(flipped), quality, TJPF_BGR, samp)
    with pytest.raises(ValueError):
        codec.encode(scene.astype(np.uint16), 80)
    with pytest.raises(ValueError):
        codec.encode(scene[:, :, :2], 80)


def test_turbojpeg_encode_from_threads_and_growing_frames(scene: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    codec = JpegCodec("turbojpeg")
    small = np.ascontiguousarray(scene[:120, :160])
    big = np.ascontiguousarray(np.tile(scene, (2, 2, 1)))
    want = {id(small): codec.encode(small, 90, "444"), id(big): codec.encode(big, 90, "444")}
    assert codec.encode(small, 90, "444") == want[id(small)]  # after the buffer grew
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [(img, pool.submit(codec.encode, img, 90, "444")) for img in [small, big] * 8]
        assert all(f.result() == want[id(img)] for img, f in jobs)
    assert codec.decode(want[id(big)]).shape == big.shape
