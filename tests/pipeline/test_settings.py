"""The settings document under two writers; the display's keys and its side-by-side layout."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import numpy as np

from pipeline.control import Control
from pipeline.shm import segment_name
from sinks.display import side_by_side, toggled

ROUNDS = 3000


def _incrementer(name: str, key: str, go: Any) -> None:  # noqa: ANN401
    ctl = Control.attach(name)
    go.wait(30)
    for _ in range(ROUNDS):
        ctl.update_settings(lambda doc: {**doc, key: doc.get(key, 0) + 1})
    ctl.close()


def test_two_writers_lose_no_update() -> None:
    ctl = Control.create(segment_name(os.getpid(), "test-settings"))
    try:
        ctx = mp.get_context("spawn")
        go = ctx.Event()
        procs = [ctx.Process(target=_incrementer, args=(ctl.name, k, go)) for k in "ab"]
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        # Each read-modify-write saw the other's last one: neither count lost a step.
        assert ctl.settings() == {"a": ROUNDS, "b": ROUNDS}
        assert ctl["settings_version"] == 2 * ROUNDS
    finally:
        ctl.close()


def test_keys_toggle_by_filter_name() -> None:
    assert toggled([], "g") == ["gray"]
    assert toggled(["gray"], "g") == []
    assert toggled(["gray"], "b") == ["gray", "blur"]
    assert toggled(["blur=15", "gray"], "b") == ["gray"]  # a parameter does not hide it
    assert toggled(["resize=320x240"], "z") == []
    assert toggled(["gray", "edges"], "x") == []
    assert toggled(["gray"], "?") is None


def test_depth_goes_beside_color_only_when_both_fit() -> None:
    color = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((480, 640, 3), 200, np.uint8)
    both = side_by_side(color, depth, 1600)
    assert both.shape == (480, 1280, 3) and both[:, 640:].min() == 200
    assert side_by_side(color, depth, 1200).shape == (480, 640, 3)
    # A rotated color frame: depth is scaled to its height, keeping its aspect.
    tall = np.zeros((640, 480, 3), np.uint8)
    assert side_by_side(tall, depth, 1600).shape == (640, 480 + 853, 3)
    assert side_by_side(color, None, 1600).shape == (480, 640, 3)
