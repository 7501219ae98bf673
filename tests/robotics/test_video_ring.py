"""The robotics children's in-order walk of the H.264 ring (robotics.publisher.Video)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pipeline.control import Control
from pipeline.shm import FLAG_KEYFRAME, FrameRing, segment_name
from robotics.publisher import Video


@pytest.fixture
def parts() -> Iterator[tuple[FrameRing, Control]]:
    ring = FrameRing.create(segment_name(os.getpid(), "test-video"), nslots=4, capacity=64)
    ctl = Control.create(segment_name(os.getpid(), "test-video-ctl"))
    try:
        yield ring, ctl
    finally:
        ring.close()
        ctl.close()


def put(ring: FrameRing, n: int, key: bool = False) -> None:
    ring.publish(f"au{n}".encode(), frame_no=n, ts_capture=float(n), width=2, height=2,
                 flags=FLAG_KEYFRAME if key else 0)


def test_starts_at_a_keyframe_reads_in_order_and_announces_consumers(
        parts: tuple[FrameRing, Control]) -> None:
    ring, ctl = parts
    subscribers = [0]
    video = Video(ring, ctl, "sink_h264_foxglove", None, lambda: subscribers[0])
    put(ring, 1, key=True)
    assert video.new_access_units() == [] and ctl["sink_h264_foxglove"] == 0
    subscribers[0] = 1
    put(ring, 2)
    assert video.new_access_units() == []  # published before the subscription: not sent
    assert ctl["sink_h264_foxglove"] == 1
    put(ring, 3)
    put(ring, 4, key=True)
    put(ring, 5)
    assert [au for _, au in video.new_access_units()] == [b"au4", b"au5"]
    subscribers[0] = 2  # a client joins the first: the stream goes on, no gap
    put(ring, 6)
    assert [au for _, au in video.new_access_units()] == [b"au6"]
    assert ctl["sink_h264_foxglove"] == 2
    video.close()
    assert ctl["sink_h264_foxglove"] == 0


def test_a_lapped_reader_waits_for_the_next_keyframe(parts: tuple[FrameRing, Control]) -> None:
    ring, ctl = parts
    video = Video(ring, ctl, "sink_h264_mcap", None, lambda: 1)
    assert video.new_access_units() == [] and ctl["sink_h264_mcap"] == 1
    put(ring, 1, key=True)
    assert [au for _, au in video.new_access_units()] == [b"au1"]
    for n in range(2, 8):  # six more into four slots: au2 and au3 are gone
        put(ring, n)
    assert video.new_access_units() == []
    put(ring, 8, key=True)
    put(ring, 9)
    assert [au for _, au in video.new_access_units()] == [b"au8", b"au9"]
