"""Depth as 10-bit video: the code mapping, the speck fill, and depth through H.264 High 10
and back, read by libavcodec and checked by ffprobe."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from media.depth_video import (
    DepthVideoDecoder,
    DepthVideoEncoder,
    VideoSettings,
    mapping_sei,
    read_mapping,
    with_mapping,
)
from media.depthcode import (
    CODE_HI,
    CODE_LO,
    INVALID_BELOW,
    INVALID_CODE,
    DepthCoder,
    step_ratio,
)
from media.h264 import nal_type, split_nals
from tests.camera.rs_recording import scene_depth, scene_regions

SCALE = 0.001
DMIN, DMAX = 0.3, 10.0


@pytest.fixture(scope="module")
def coder() -> DepthCoder:
    return DepthCoder(DMIN, DMAX, SCALE)


def test_every_depth_in_range_comes_back_within_half_a_code(coder: DepthCoder) -> None:
    units = np.arange(int(DMIN / SCALE), int(DMAX / SCALE) + 1, dtype=np.uint16)
    back = coder.decode(coder.encode(units))
    truth = units * SCALE
    assert np.all(np.abs(back - truth) / truth <= step_ratio(DMIN, DMAX) / 2 + 1e-6)
    assert step_ratio(DMIN, DMAX) < 0.004  # 0.37 % per code over 0.3-10 m


def test_the_documented_formula_is_the_table(coder: DepthCoder) -> None:
    span = math.log(DMAX / DMIN)
    for d in (0.3, 0.5, 1.0, 2.345, 7.0, 10.0):
        code = CODE_LO + round((CODE_HI - CODE_LO) * math.log(d / DMIN) / span)
        assert coder.encode(np.array([round(d / SCALE)], np.uint16))[0] == code
        back = DMIN * math.exp((code - CODE_LO) * span / (CODE_HI - CODE_LO))
        assert coder.decode(np.array([code]))[0] == pytest.approx(back, rel=1e-6)


def test_no_depth_is_its_own_code_and_the_low_codes_read_as_none(coder: DepthCoder) -> None:
    assert coder.encode(np.array([0], np.uint16))[0] == INVALID_CODE
    assert coder.decode(np.arange(INVALID_BELOW)).max() == 0.0
    assert coder.decode(np.array([INVALID_BELOW]))[0] == pytest.approx(DMIN)
    # Beyond the range: clamped to its ends, never read as invalid.
    ends = coder.encode(np.array([100, 65535], np.uint16))
    assert list(ends) == [CODE_LO, CODE_HI]
    assert coder.decode(np.array([1023 + 50]))[0] == pytest.approx(DMAX)


def test_lone_holes_are_filled_with_the_farthest_depth_around_and_regions_stay(
        coder: DepthCoder) -> None:
    d = np.full((12, 12), 2000, np.uint16)
    d[8, 9] = 3000
    d[8, 8] = 0  # a speck beside the far pixel: takes its depth
    d[2, 8] = d[2, 9] = 0  # a pair: still specks
    d[0:4, 0:4] = 0  # a region: every pixel stays invalid, rim included
    codes = coder.video_codes(d)
    assert codes[8, 8] == codes[8, 9] == coder.encode(np.array([3000], np.uint16))[0]
    assert codes[2, 8] == codes[2, 9] == coder.encode(np.array([2000], np.uint16))[0]
    assert (codes[0:4, 0:4] == INVALID_CODE).all()
    assert (codes[4:, :] != INVALID_CODE).all() and (codes[:, 4:] != INVALID_CODE).all()


def _through_video(frames: list[np.ndarray], coder: DepthCoder,
                   settings: VideoSettings) -> tuple[list[np.ndarray], list[bytes]]:
    h, w = frames[0].shape
    enc = DepthVideoEncoder(w, h, 30.0, settings)
    dec = DepthVideoDecoder()
    aus: list[bytes] = []
    out: list[np.ndarray] = []
    for d in frames:
        for au in enc.encode(coder.video_codes(d)):
            aus.append(au.data)
            out += dec.decode(au.data)
    assert len(out) == len(frames)  # zero latency: a frame in, a frame out
    return [coder.decode(c) for c in out], aus


def _within(truth_units: np.ndarray, metres: np.ndarray) -> float:
    truth = truth_units * SCALE
    valid = truth_units > 0
    return float((np.abs(metres[valid] - truth[valid]) <= 0.01 * truth[valid]).mean())


def test_the_known_depth_scene_decodes_exactly_enough_and_keeps_its_hole(
        coder: DepthCoder) -> None:
    w, h = 640, 480
    base = scene_depth(w, h)
    frames = [base.copy() for _ in range(10)]
    decoded, aus = _through_video(frames, coder, VideoSettings())
    x0, y0, x1, y1 = scene_regions(w, h)["invalid"]
    for got in decoded:
        assert _within(base, got) >= 0.99
        # the strip's inside (2 px in from its edges, where the codec's blur ends)
        assert (got[y0 + 2:y1 - 2, x0 + 2:x1 - 2] == 0).all()
    assert sum(map(len, aus)) * 8 * 30 / len(aus) < VideoSettings().bitrate


def test_the_synthetic_scene_keeps_95_percent_within_1_percent_from_the_first_frame(
        coder: DepthCoder) -> None:
    w, h = 640, 360
    src = SyntheticSource(w, h, 30.0)
    src.open()
    frames = []
    try:
        for _ in range(30):
            f = src.read(1.0)
            assert f is not None and f.depth is not None
            frames.append(f.depth.copy())
            time.sleep(1 / 30)  # the objects move with the clock
    finally:
        src.close()
    decoded, aus = _through_video(frames, coder, VideoSettings())
    shares = [_within(t, g) for t, g in zip(frames, decoded, strict=True)]
    assert min(shares) >= 0.95, shares
    # the cap holds, keyframe included
    assert sum(map(len, aus)) * 8 * 30 / len(aus) < VideoSettings().bitrate


def test_a_forced_keyframe_starts_with_its_parameter_sets(coder: DepthCoder) -> None:
    enc = DepthVideoEncoder(320, 240, 30.0, VideoSettings())
    frame = coder.video_codes(scene_depth(320, 240))
    first = enc.encode(frame)[0]
    second = enc.encode(frame)[0]
    enc.force_keyframe()
    third = enc.encode(frame)[0]
    assert first.keyframe and not second.keyframe and third.keyframe
    for au in (first, third):
        types = [nal_type(n) for n in split_nals(au.data)]
        assert types[:2] == [7, 8] and 5 in types, types  # SPS, PPS, then IDR slices
        sps = split_nals(au.data)[0]
        assert sps[1] == 110  # profile_idc: High 10


def test_ffprobe_reads_the_stream_as_10_bit_high_10(coder: DepthCoder, tmp_path: Path) -> None:
    enc = DepthVideoEncoder(320, 240, 30.0, VideoSettings())
    path = tmp_path / "depth.h264"
    with path.open("wb") as f:
        for _ in range(5):
            for au in enc.encode(coder.video_codes(scene_depth(320, 240))):
                f.write(au.data)
    res = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    stream = json.loads(res.stdout)["streams"][0]
    assert stream["codec_name"] == "h264"
    assert stream["profile"] == "High 10"
    assert stream["pix_fmt"] == "yuv420p10le"
    assert (stream["width"], stream["height"]) == (320, 240)


def test_the_mapping_rides_in_an_sei_that_decoders_pass_over(coder: DepthCoder) -> None:
    doc = {"coding": "log10", "min": 0.3, "max": 10.0, "code_lo": CODE_LO, "code_hi": CODE_HI,
           "invalid_below": INVALID_BELOW, "intrinsics": {"fx": 600.0, "width": 320}}
    enc = DepthVideoEncoder(320, 240, 30.0, VideoSettings())
    key = enc.encode(coder.video_codes(scene_depth(320, 240)))[0]
    assert read_mapping(key.data) is None
    au = with_mapping(key.data, mapping_sei(doc))
    assert read_mapping(au) == doc
    types = [nal_type(n) for n in split_nals(au)]
    first_slice = next(i for i, t in enumerate(types) if t in (1, 5))
    assert 6 in types[:first_slice]  # before the first slice, as SEI must be
    assert len(DepthVideoDecoder().decode(au)) == 1  # a decoder passes over it


def test_sei_bytes_are_escaped_against_start_codes() -> None:
    from media.depth_video import _escape  # noqa: PLC0415

    assert _escape(b"\x00\x00\x01\x00\x00\x00\x00\x00\x04") == \
        b"\x00\x00\x03\x01\x00\x00\x03\x00\x00\x03\x00\x04"
    sei = mapping_sei({"min": 0.3})
    assert b"\x00\x00\x01" not in sei[4:] and read_mapping(sei) == {"min": 0.3}
