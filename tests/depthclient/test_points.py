"""The Python client's point helpers take the nearest pixel with depth near a hole."""

from __future__ import annotations

import numpy as np
import pytest

from depthclient import SNAP_RADIUS, depth_at, measure, nearest_depth, point_at
from depthclient.client import snap_offsets

W, H = 64, 48
INTR = {"width": W, "height": H, "fx": 50.0, "fy": 50.0, "ppx": W / 2, "ppy": H / 2}


def ramp() -> np.ndarray:
    """Depth that differs at every pixel (metres), so a reading says where it was taken."""
    ys, xs = np.mgrid[0:H, 0:W]
    return (1.0 + xs * 0.01 + ys * 0.001).astype(np.float32)


def test_a_pixel_with_depth_is_read_as_it_is() -> None:
    d = ramp()
    assert nearest_depth(d, 10, 20) == (10, 20, pytest.approx(float(d[20, 10])))
    assert nearest_depth(d, 10.6, 20.2)[:2] == (10.6, 20.2)  # inside pixel (10, 20)
    assert depth_at(d, 10.6, 20.2) == pytest.approx(float(d[20, 10]))


def test_a_hole_column_takes_the_nearest_neighbour() -> None:
    d = ramp()
    d[:, 12] = 0
    d[30, 11] = 0  # and a single hole beside the column
    assert nearest_depth(d, 12, 5) == (11, 5, pytest.approx(float(d[5, 11])))  # left first
    # Left is a hole too: right, at the same distance, beats anything farther.
    assert nearest_depth(d, 12, 30) == (13, 30, pytest.approx(float(d[30, 13])))
    assert nearest_depth(d, 12.5, 5.5)[:2] == (11.5, 5.5)  # moved by whole pixels


def test_up_comes_before_left_at_equal_distance() -> None:
    d = ramp()
    d[20, 20] = 0
    assert nearest_depth(d, 20, 20)[:2] == (20, 19)
    assert snap_offsets(1) == ((0, 0), (0, -1), (-1, 0), (1, 0), (0, 1))
    assert len(snap_offsets(3)) == 29  # the disc, not the square
    assert [dx * dx + dy * dy for dx, dy in snap_offsets(3)] == sorted(
        dx * dx + dy * dy for dx, dy in snap_offsets(3))


def test_beyond_the_radius_there_is_no_depth() -> None:
    d = ramp()
    d[10:20, 10:20] = 0  # a 10 x 10 hole
    assert SNAP_RADIUS == 3
    assert nearest_depth(d, 14, 14) is None  # 5 pixels from the nearest depth
    assert depth_at(d, 12, 14) == pytest.approx(float(d[14, 9]))  # 3 away: found
    assert depth_at(d, 13, 14) is None  # 4 away
    assert depth_at(d, 13, 14, radius=4) == pytest.approx(float(d[14, 9]))
    assert depth_at(d, 12, 14, radius=0) is None
    assert nearest_depth(d, -1, 5) is None and nearest_depth(d, W, 5) is None
    nan = ramp()
    nan[5, 5] = np.nan  # NaN is no depth either
    assert nearest_depth(nan, 5, 5)[:2] == (5, 4)


def test_points_and_measure_use_the_snapped_pixel() -> None:
    d = ramp()
    d[:, 12] = 0
    p = point_at(d, INTR, 12, 5)
    z = float(d[5, 11])
    assert p.pixel == (11, 5)
    assert p[:3] == pytest.approx(((11 - W / 2) / 50 * z, (5 - H / 2) / 50 * z, z))
    q = point_at(d, INTR, 40, 40)
    assert q.pixel == (40, 40)
    assert measure(d, INTR, (12, 5), (40, 40)) == pytest.approx(
        float(np.linalg.norm(np.array(p[:3]) - np.array(q[:3]))))
    assert measure(d, INTR, (12, 5), (40, 40), radius=0) is None
    # Depth at half the color size: the pixel used is still a color pixel.
    half = d[::2, ::2].copy()
    half[:, 6] = 0  # color columns 12 and 13
    p = point_at(half, INTR, 12, 10)
    assert p.pixel == (10, 10) and p.z == pytest.approx(float(half[5, 5]))
