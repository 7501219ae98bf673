"""Each OpenCV filter does what it says on a known input; the chain validates and keeps state."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from media.filters import (
    DRAW_COLOR_CONTOURS,
    DRAW_COLOR_CORNERS,
    DRAW_COLOR_LINES,
    FILTERS,
    FilterChain,
    filter_catalog,
    parse_filter_list,
)


def run(name: str, img: np.ndarray) -> np.ndarray:
    return FilterChain([name]).apply(img)


def textured(h: int = 120, w: int = 160, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)


def square_on_black(h: int = 240, w: int = 320, p1: tuple[int, int] = (100, 80),
                    p2: tuple[int, int] = (220, 180), value: int = 200) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    cv2.rectangle(img, p1, p2, (value, value, value), -1)
    return img


def color_mask(img: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    return np.all(img == np.array(bgr, np.uint8), axis=2)


def test_gray_makes_channels_equal_to_luma() -> None:
    img = textured()
    out = run("gray", img)
    assert np.array_equal(out[:, :, 0], out[:, :, 1])
    assert np.array_equal(out[:, :, 1], out[:, :, 2])
    assert np.array_equal(out[:, :, 0], cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert not np.array_equal(out, img)


def test_blur_lowers_variance_and_keeps_mean() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = run("blur", img)
    assert out.var() < img.var() / 10
    assert abs(float(out.mean()) - float(img.mean())) < 1.0
    stronger = run("blur=31", img)
    assert stronger.var() < out.var()


def test_threshold_is_binary_and_finds_the_bright_square() -> None:
    rng = np.random.default_rng(4)
    img = np.clip(30 + rng.integers(-10, 10, (240, 320, 3)), 0, 255).astype(np.uint8)
    img[80:160, 100:200] = 200
    for name in ("threshold", "threshold=100"):
        out = run(name, img)
        assert set(np.unique(out).tolist()) == {0, 255}, name
        assert (out[80:160, 100:200] == 255).all(), name
        out[80:160, 100:200] = 0
        assert (out == 0).all(), name
    assert (run("threshold=250", img) == 0).all()


def test_edges_on_rectangle_border_not_inside() -> None:
    img = square_on_black()
    out = run("edges", img)
    g = out[:, :, 0]
    assert (out[:, :, 0] == out[:, :, 2]).all()
    for x in (130, 160, 190):
        assert g[78:83, x].any() and g[178:183, x].any()
    for y in (110, 130, 150):
        assert g[y, 98:103].any() and g[y, 218:223].any()
    assert not g[90:170, 110:210].any()
    assert not g[:70, :].any() and not g[190:, :].any()


def test_contours_drawn_around_a_blob() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    cv2.circle(img, (160, 120), 50, (255, 255, 255), -1)
    out = run("contours", img)
    green = color_mask(out, DRAW_COLOR_CONTOURS)
    yy, xx = np.mgrid[0:240, 0:320]
    r = np.hypot(xx - 160, yy - 120)
    assert green.sum() > 200
    assert (r[green] > 46).all() and (r[green] < 54).all()
    for angle in np.linspace(-np.pi, np.pi, 16, endpoint=False):
        ring = (np.abs(r - 50) < 3) & (np.abs(np.arctan2(yy - 120, xx - 160) - angle) < 0.05)
        assert green[ring].any(), f"no contour near angle {angle:.2f}"
    assert (out[r < 40] == 255).all()


def test_corners_found_at_the_square_corners_only() -> None:
    img = np.zeros((320, 320, 3), np.uint8)
    cv2.rectangle(img, (100, 100), (200, 200), (255, 255, 255), -1)
    out = run("corners", img)
    changed = np.any(out != img, axis=2)
    assert color_mask(out, DRAW_COLOR_CORNERS).any()
    yy, xx = np.mgrid[0:320, 0:320]
    near_any = np.zeros_like(changed)
    for cx, cy in ((100, 100), (200, 100), (100, 200), (200, 200)):
        near = np.hypot(xx - cx, yy - cy) < 12
        assert changed[near].any(), f"no corner marked near ({cx}, {cy})"
        near_any |= near
    assert not changed[~near_any].any()


def test_lines_detects_a_drawn_line() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    cv2.line(img, (20, 30), (300, 200), (255, 255, 255), 1)
    out = run("lines", img)
    red = color_mask(out, DRAW_COLOR_LINES)
    ts = np.linspace(0.1, 0.9, 40)
    on_line = [red[int(round(30 + t * 170)), int(round(20 + t * 280))] for t in ts]
    assert np.mean(on_line) > 0.9
    yy, xx = np.mgrid[0:240, 0:320]
    dist = np.abs(170 * (xx - 20) - 280 * (yy - 30)) / np.hypot(170, 280)
    assert not red[dist > 4].any()


def test_laplacian_zero_on_flat_nonzero_on_edges() -> None:
    img = square_on_black()
    out = run("laplacian", img)
    assert (out[90:170, 110:210] == 0).all()
    assert (out[:70] == 0).all()
    assert (out[79:82, 120:200].max(axis=0) > 0).all()
    assert (out[100:160, 99:102].max(axis=1) > 0).all()


def object_frame(bg: np.ndarray) -> np.ndarray:
    obj = bg.copy()
    cv2.rectangle(obj, (60, 40), (100, 80), (0, 0, 255), -1)
    return obj


def test_bgsub_finds_a_new_object_after_learning_the_background() -> None:
    bg = textured()
    chain = FilterChain(["bgsub"])
    for _ in range(10):
        out = chain.apply(bg)
    assert (out == 0).all()
    out = chain.apply(object_frame(bg))
    assert set(np.unique(out).tolist()) <= {0, 255}
    assert (out[:, :, 0] == out[:, :, 2]).all()
    assert (out[43:78, 63:98] == 255).mean() > 0.95
    fg = out[:, :, 0] == 255
    fg[38:83, 58:103] = False
    assert fg.mean() < 0.01


def test_set_keeps_state_of_stateful_filters_that_stay() -> None:
    bg = textured()
    chain = FilterChain(["bgsub"])
    for _ in range(10):
        chain.apply(bg)
    chain.set(["bgsub", "rotate180"])
    assert chain.names == ["bgsub", "rotate180"]
    assert (chain.apply(bg) == 0).all()
    out = chain.apply(object_frame(bg))
    assert (out[::-1, ::-1][43:78, 63:98] == 255).mean() > 0.95


def test_set_resets_stateful_filters_that_are_removed() -> None:
    bg = textured()
    chain = FilterChain(["bgsub"])
    for _ in range(10):
        chain.apply(bg)
    assert (chain.apply(bg) == 0).all()
    chain.set(["gray"])
    chain.set(["bgsub"])
    # A fresh model sees its first frame as all foreground; the learned one saw none.
    assert (chain.apply(bg) == 255).all()


@pytest.mark.parametrize(("name", "corner", "shape"), [
    ("rotate90", (0, -1), (60, 40, 3)),
    ("rotate180", (-1, -1), (40, 60, 3)),
    ("rotate270", (-1, 0), (60, 40, 3)),
])
def test_rotate_moves_top_left_pixel(name: str, corner: tuple[int, int],
                                     shape: tuple[int, int, int]) -> None:
    img = np.zeros((40, 60, 3), np.uint8)
    img[0, 0] = (255, 10, 20)
    out = run(name, img)
    assert out.shape == shape
    assert tuple(out[corner]) == (255, 10, 20)
    assert np.count_nonzero(out.any(axis=2)) == 1
    turns = {"rotate90": -1, "rotate180": 2, "rotate270": 1}[name]
    textured_img = textured(40, 60)
    assert np.array_equal(run(name, textured_img), np.rot90(textured_img, turns))


def test_resize_shapes_and_content() -> None:
    img = np.zeros((720, 1280, 3), np.uint8)
    img[:, :640] = 255
    half = run("resize", img)
    assert half.shape == (360, 640, 3)
    assert (half[:, :318] == 255).all() and (half[:, 322:] == 0).all()
    assert run("resize=640x360", img).shape == (360, 640, 3)
    assert run("resize=320x400", img).shape == (400, 320, 3)
    assert run("resize=0.25", img).shape == (180, 320, 3)


def test_grabcut_keeps_central_object_and_zeroes_background() -> None:
    rng = np.random.default_rng(5)
    h, w = 480, 640
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (90, 140, 90)
    img = np.clip(img + rng.integers(-15, 15, (h, w, 3)), 0, 255).astype(np.uint8)
    cv2.ellipse(img, (320, 240), (110, 90), 0, 0, 360, (30, 30, 220), -1)
    out = run("grabcut", img)
    inner = np.zeros((h, w), np.uint8)
    cv2.ellipse(inner, (320, 240), (95, 75), 0, 0, 360, 255, -1)
    inner_b = inner > 0
    assert np.mean(np.all(out[inner_b] == img[inner_b], axis=1)) > 0.95
    outer = np.ones((h, w), np.uint8)
    cv2.ellipse(outer, (320, 240), (130, 110), 0, 0, 360, 0, -1)
    assert np.mean(np.all(out[outer > 0] == 0, axis=1)) > 0.95


def test_grabcut_is_marked_slow_and_bgsub_stateful() -> None:
    assert FILTERS["grabcut"].slow and "SLOW" in FILTERS["grabcut"].description
    assert [n for n, s in FILTERS.items() if s.slow] == ["grabcut"]
    assert [n for n, s in FILTERS.items() if s.stateful] == ["bgsub"]
    assert {d["name"] for d in filter_catalog()} == set(FILTERS)


def test_chain_applies_in_order() -> None:
    img = textured(40, 60)
    assert FilterChain(["rotate90", "resize=30x20"]).apply(img).shape == (20, 30, 3)
    assert FilterChain(["resize=30x20", "rotate90"]).apply(img).shape == (30, 20, 3)
    both = FilterChain(["threshold", "blur"]).apply(img)
    assert len(np.unique(both)) > 2
    assert set(np.unique(FilterChain(["blur", "threshold"]).apply(img))) <= {0, 255}


def test_empty_chain_returns_the_frame() -> None:
    img = textured()
    chain = FilterChain([])
    assert chain.names == []
    assert chain.apply(img) is img


def test_unknown_name_is_a_clear_one_line_error() -> None:
    with pytest.raises(ValueError) as info:
        FilterChain(["gray", "bogus"])
    msg = str(info.value)
    assert "\n" not in msg and "'bogus'" in msg
    for name in FILTERS:
        assert name in msg
    with pytest.raises(ValueError, match="bogus"):
        parse_filter_list("gray,bogus")


def test_parse_filter_list_normalises_and_checks_parameters() -> None:
    assert parse_filter_list("gray,blur") == ["gray", "blur"]
    assert parse_filter_list(" Gray , blur = 15,,resize=640X360 ") == [
        "gray", "blur=15", "resize=640x360"]
    assert parse_filter_list("") == []
    for bad in ("blur=4", "blur=x", "threshold=300", "resize=0x10", "resize=abc", "gray=1"):
        with pytest.raises(ValueError, match="filter '"):
            parse_filter_list(bad)


def test_invalid_set_leaves_the_chain_unchanged() -> None:
    chain = FilterChain("gray,blur")
    with pytest.raises(ValueError):
        chain.set(["edges", "nope"])
    assert chain.names == ["gray", "blur"]


@pytest.mark.parametrize("name", list(FILTERS))
def test_output_is_uint8_bgr_and_input_untouched(name: str) -> None:
    img = textured(96, 128)
    cv2.rectangle(img, (30, 20), (90, 70), (250, 250, 250), -1)
    before = img.copy()
    chain = FilterChain([name])
    for frame in (img, img):
        out = chain.apply(frame)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert out.flags.c_contiguous
    assert np.array_equal(img, before), f"{name} wrote into its input"
    gray_in = FilterChain([name]).apply(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert gray_in.dtype == np.uint8 and gray_in.ndim == 3 and gray_in.shape[2] == 3
