"""Shared-memory rings: a writer process and reader processes hammering one ring."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest

from pipeline.control import Control
from pipeline.shm import FrameRing, TornRead, cleanup_stale_segments, segment_name

SLOT = 64 * 1024


def _writer(name: str, seconds: float) -> None:
    ring = FrameRing.attach(name)
    rng = np.random.default_rng(1)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        size = int(rng.integers(1024, SLOT))
        slot, view = ring.begin_write()
        # Fill in two halves so a reader racing the writer would see mixed frame numbers.
        half = size // 2
        view[:half] = bytes([n % 251]) * half
        view[half:size] = bytes([n % 251]) * (size - half)
        ring.end_write(slot, frame_no=n, ts_capture=time.time(), width=size, height=1,
                       len0=size)
    ring.close()


def _reader(name: str, seconds: float, out: mp.Queue) -> None:
    ring = FrameRing.attach(name)
    good = torn = 0
    bad = 0
    last = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = ring.read_latest(retries=1)
        if got is None:
            torn += 1
            continue
        meta, data = got
        if meta.counter < last:
            bad += 1
        last = meta.counter
        expected = bytes([meta.frame_no % 251]) * meta.len0
        if len(data) != meta.width or data != expected:
            bad += 1
        good += 1
    ring.close()
    out.put((good, torn, bad))


def test_no_torn_frame_is_ever_read() -> None:
    """Readers only ever get a payload that matches its own header, in publish order."""
    ctx = mp.get_context("spawn")
    ring = FrameRing.create(segment_name(os.getpid(), "test-hammer"), nslots=2, capacity=SLOT)
    try:
        q: mp.Queue = ctx.Queue()
        readers = [ctx.Process(target=_reader, args=(ring.name, 2.5, q)) for _ in range(2)]
        writer = ctx.Process(target=_writer, args=(ring.name, 3.0))
        writer.start()
        for r in readers:
            r.start()
        results = [q.get(timeout=30) for _ in readers]
        for p in [*readers, writer]:
            p.join(30)
            assert p.exitcode == 0
        for good, _torn, bad in results:
            assert bad == 0
            assert good > 100
        # With 2 slots and a writer flat out, readers must have raced it at least once:
        # otherwise this test would not be exercising the seqlock at all.
        assert sum(t for _, t, _ in results) > 0
    finally:
        ring.close()
    assert not os.path.exists(f"/dev/shm/{ring.name}")


def test_read_meta_refuses_a_slot_being_written() -> None:
    ring = FrameRing.create(segment_name(os.getpid(), "test-odd"), nslots=3, capacity=16)
    try:
        assert ring.read_latest() is None
        ring.publish(b"abc", frame_no=1, ts_capture=1.0, width=3, height=1)
        slot, view = ring.begin_write()
        with pytest.raises(TornRead):
            ring.read_meta(slot, 2)
        meta, data = ring.read_latest()  # the previous slot is still intact
        assert (meta.frame_no, data) == (1, b"abc")
        view[:2] = b"xy"
        ring.end_write(slot, frame_no=2, ts_capture=2.0, width=2, height=1, len0=2)
        view.release()
        meta, data = ring.read_latest()
        assert (meta.frame_no, meta.counter, data) == (2, 2, b"xy")
        with pytest.raises(ValueError):
            ring.publish(b"x" * 17, frame_no=3, ts_capture=3.0, width=1, height=1)
    finally:
        ring.close()


def test_stale_segments_of_dead_owner_are_removed(tmp_path) -> None:
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=time.sleep, args=(0,))
    p.start()
    p.join()
    dead_pid = p.pid
    (tmp_path / f"rsmjpeg-{dead_pid}-raw").write_bytes(b"x")
    (tmp_path / f"rsmjpeg-{os.getpid()}-raw").write_bytes(b"x")
    (tmp_path / "other-segment").write_bytes(b"x")
    removed = cleanup_stale_segments(str(tmp_path))
    assert removed == [f"rsmjpeg-{dead_pid}-raw"]
    assert sorted(e.name for e in tmp_path.iterdir()) == sorted(
        [f"rsmjpeg-{os.getpid()}-raw", "other-segment"])


def test_control_block_fields_and_documents() -> None:
    ctl = Control.create(segment_name(os.getpid(), "test-control"))
    try:
        other = Control.attach(ctl.name)
        ctl["viewers_color"] = 3
        ctl.add("frames_captured", 5)
        assert other.viewers("color") == 3
        assert other["frames_captured"] == 5
        assert other.info() == {}
        ctl.set_info({"kind": "synthetic", "width": 640})
        assert other.info() == {"kind": "synthetic", "width": 640}
        with pytest.raises(ValueError):
            ctl.set_settings({"x": "y" * 10000})
        other.close()
    finally:
        ctl.close()
