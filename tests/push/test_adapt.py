"""The adaptive push's parts one by one: quality read-back, ladder, controller, pacing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from encoder.shaping import requested_shape
from media.jpeg import JpegCodec
from pipeline.control import Control
from push.adapt import Adapter, Level, TokenBucket, jpeg_quality, ladder

MBIT = 1e6 / 8  # bytes per second


@pytest.mark.parametrize("backend", ["turbojpeg", "opencv"])
def test_quality_is_read_back_from_the_jpeg_for_every_setting(backend: str) -> None:
    codec = JpegCodec(backend)
    img = np.random.default_rng(1).integers(0, 255, (32, 48, 3), np.uint8)
    wrong = [(q, jpeg_quality(codec.encode(img, q))) for q in range(1, 101)
             if jpeg_quality(codec.encode(img, q)) != q]
    assert not wrong
    assert jpeg_quality(b"\xff\xd8\xff\xd9") == 0


def test_ladder_runs_from_full_quality_to_the_bounds() -> None:
    lv = ladder(1280, 80, 30, 640)
    assert lv[0] == Level(1280, 80) and lv[-1] == Level(640, 30)
    assert {x.width for x in lv} == {1280, 960, 640}
    assert all(a.width >= b.width for a, b in zip(lv, lv[1:], strict=False))
    assert min(x.quality for x in lv if x.width > 640) == 50
    assert ladder(320, 60, 60, 640) == [Level(320, 60)]


def _tick(ad: Adapter, now: float, *, sent: float, busy: float, delivery: float,
          fps: float = 30.0) -> Level:
    ad.update_capacity(sent_rate=sent, busy=busy, delivery=delivery)
    lv = ad.choose(fps, now)
    assert lv is not None
    return lv


def test_a_thin_link_shrinks_frames_to_fit_and_a_free_one_restores_them() -> None:
    ad = Adapter(max_quality=80, min_quality=30, min_width=320)
    ad.observe_frame(1280, 80, 140_000)
    lv = _tick(ad, 0.0, sent=4 * MBIT, busy=1.0, delivery=4 * MBIT)
    assert lv != Level(1280, 80)
    assert ad.estimate(lv) <= 4 * MBIT * 0.8 / 15
    # The link frees up: frames at the small level go out in a fraction of the time.
    now = 0.0
    for _ in range(40):
        now += 0.5
        ad.observe_frame(lv.width, lv.quality, int(ad.estimate(lv)))
        lv = _tick(ad, now, sent=ad.estimate(lv) * 20, busy=0.2, delivery=50 * MBIT)
        if lv == Level(1280, 80):
            break
    assert lv == Level(1280, 80) and now <= 10.0, (lv, now)


def test_max_bitrate_caps_the_budget_even_on_a_fast_link() -> None:
    ad = Adapter(max_quality=80, min_quality=30, min_width=320, max_bps=2e6)
    ad.observe_frame(1280, 80, 140_000)
    lv = _tick(ad, 0.0, sent=10 * MBIT, busy=0.1, delivery=100 * MBIT)
    assert ad.capacity >= 20 * MBIT
    assert ad.budget(30) == pytest.approx(2 * MBIT / 15)
    assert ad.estimate(lv) <= ad.budget(30)


def test_a_step_up_the_link_cannot_carry_makes_the_next_try_wait_longer() -> None:
    ad = Adapter(max_quality=80, min_quality=30, min_width=320)
    ad.observe_frame(1280, 80, 140_000)
    _tick(ad, 0.0, sent=2 * MBIT, busy=1.0, delivery=2 * MBIT)
    low = ad.index
    ad.capacity = 20 * MBIT  # a (wrong) optimistic estimate: step up ...
    _tick(ad, 1.5, sent=2 * MBIT, busy=0.3, delivery=20 * MBIT)
    up = ad.index
    assert up < low
    # ... which the link cannot carry: straight back down, and a longer hold.
    _tick(ad, 2.0, sent=2 * MBIT, busy=1.0, delivery=2 * MBIT)
    assert ad.index > up and ad.hold > 1.0
    # Once the link clearly has room (the socket mostly idle), the hold is short again.
    _tick(ad, 2.5, sent=2 * MBIT, busy=0.1, delivery=20 * MBIT)
    _tick(ad, 3.0, sent=2 * MBIT, busy=0.1, delivery=20 * MBIT)
    assert ad.hold == 1.0


def test_token_bucket_paces_to_its_rate() -> None:
    tb = TokenBucket(rate=100_000, depth=50_000)
    assert tb.wait_for(40_000) == 0.0
    wait = tb.wait_for(40_000)
    assert 0.25 <= wait <= 0.31


def test_encoder_applies_a_requested_quality_and_width_and_never_enlarges() -> None:
    ctl = Control.create(f"rsmjpeg-{os.getpid()}-adapttest")
    try:
        img = np.zeros((720, 1280, 3), np.uint8)
        assert requested_shape(ctl, "color", img, 80)[1] == 80
        ctl["push_quality_color"], ctl["push_width_color"] = 40, 640
        out, q = requested_shape(ctl, "color", img, 80)
        assert out.shape == (360, 640, 3) and q == 40
        assert requested_shape(ctl, "depth", img, 80)[0].shape == img.shape
        ctl["push_quality_color"], ctl["push_width_color"] = 95, 4000
        out, q = requested_shape(ctl, "color", img, 80)
        assert out.shape == img.shape and q == 80
    finally:
        ctl.close()


def test_a_request_is_ignored_while_another_sink_reads_the_stream() -> None:
    ctl = Control.create(f"rsmjpeg-{os.getpid()}-adaptshared")
    try:
        img = np.zeros((720, 1280, 3), np.uint8)
        ctl["sink_color"] = 1  # the push
        ctl["push_quality_color"], ctl["push_width_color"] = 40, 640
        assert requested_shape(ctl, "color", img, 80)[0].shape == (360, 640, 3)
        ctl["sink_color_mcap"] = 1  # a recording reads the same ring: full frames for all
        out, q = requested_shape(ctl, "color", img, 80)
        assert out.shape == img.shape and q == 80
        ctl["sink_color_mcap"], ctl["viewers_color"] = 0, 1
        assert requested_shape(ctl, "color", img, 80)[1] == 80
    finally:
        ctl.close()


def test_hue_depth_is_shrunk_without_blending_depths() -> None:
    from encoder.shaping import Shape, apply_shape
    from media.depth import render_depth

    depth = np.zeros((720, 1280), np.uint16)
    depth[:, 640:] = 5000
    depth[:, :640] = 500
    img = render_depth(depth, "hue-log", 0.3, 10.0)
    out, _ = apply_shape(Shape(0, 640), img, 90, nearest=True)
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert colours == {tuple(img[0, 0]), tuple(img[0, -1])}
