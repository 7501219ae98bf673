"""The settings document under two writers, and what the display's keys do to it."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

from pipeline.control import Control
from pipeline.display import toggled
from pipeline.shm import segment_name

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
