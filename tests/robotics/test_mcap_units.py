"""The pieces of the all-day MCAP recording that need no server: sizes, durations, names,
the depth frame account, PNG depth and the ROS compressedDepth message."""

from __future__ import annotations

import argparse
import struct

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from pipeline.args import byte_size, duration
from robotics.depth import FrameSpan, PngEncoder, encode_png
from robotics.mcap_files import series_path
from robotics.ros2 import compressed_depth


@pytest.mark.parametrize(("text", "value"), [
    ("1G", 1 << 30), ("500M", 500 << 20), ("2048k", 2 << 20), ("1.5GiB", 3 << 29),
    ("1048576", 1 << 20), ("2 MB", 2 << 20)])
def test_sizes_are_binary_with_suffixes(text: str, value: int) -> None:
    assert byte_size(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("5s", 5.0), ("10m", 600.0), ("1h", 3600.0), ("90", 90.0), ("1.5m", 90.0)])
def test_durations_take_s_m_h(text: str, value: float) -> None:
    assert duration(text) == value


@pytest.mark.parametrize("text", ["", "G", "1x", "nan", "0.5M", "-1G"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


@pytest.mark.parametrize("text", ["", "s", "0.2s", "nanh", "2d", "-5m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_series_names_follow_rosbag2() -> None:
    assert series_path("/data/run.mcap", 0) == "/data/run_0.mcap"
    assert series_path("/data/day.2.mcap", 12) == "/data/day.2_12.mcap"


def test_frame_span_counts_gaps_across_files_but_not_a_restarted_source() -> None:
    a = FrameSpan()
    for n in (5, 6, 8):
        a.add(n)
    b = FrameSpan(a.last)
    for n in (10, 11, 1, 2):  # 9 lost at the boundary; then the capture restarted
        b.add(n)
    assert a.record() == {"depth_first_frame": "5", "depth_last_frame": "8",
                          "depth_messages": "3", "depth_missed": "1"}
    assert b.record()["depth_first_frame"] == "10" and b.missed == 1 and b.messages == 4
    assert FrameSpan(7).record()["depth_first_frame"] == ""


def test_png_is_lossless_and_in_order_and_drops_beyond_its_backlog() -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 65536, (48, 64), dtype=np.uint16) for _ in range(6)]
    enc = PngEncoder(workers=2, backlog=3)
    try:
        accepted = [enc.submit(f.tobytes(), 64, 48, i) for i, f in enumerate(frames)]
        done = enc.finished(wait=True)
    finally:
        enc.close()
    # Nothing was collected between the submissions, so the backlog decides what is kept.
    assert accepted == [True, True, True, False, False, False] and enc.dropped == 3
    assert [tag for _, tag in done] == [0, 1, 2]
    for png, i in done:
        assert np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8),
                                           cv2.IMREAD_UNCHANGED), frames[i])


def test_compressed_depth_is_what_image_transport_writes() -> None:
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    png = encode_png(depth.tobytes(), 4, 3)
    msg = get_typestore(Stores.ROS2_HUMBLE).deserialize_cdr(
        compressed_depth(png, 12.5, "cam"), "sensor_msgs/msg/CompressedImage")
    assert msg.format == "16UC1; compressedDepth png"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        12, 500_000_000, "cam")
    data = bytes(msg.data)
    assert struct.unpack("<iff", data[:12]) == (0, 0.0, 0.0) and data[12:] == png
