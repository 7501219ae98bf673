"""Shared-memory rings: a writer process and reader processes hammering one ring."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from multiprocessing.synchronize import Event

import numpy as np
import pytest

from pipeline.control import Control, claimed, name_slot
from pipeline.shm import FrameRing, TornRead, cleanup_stale_segments, segment_name

SLOT = 64 * 1024


def _writer(name: str, started: Event, stop: Event) -> None:
    """Writes flat out until told to stop; `started` once the first frame is out."""
    ring = FrameRing.attach(name)
    rng = np.random.default_rng(1)
    n = 0
    while not stop.is_set():
        n += 1
        size = int(rng.integers(1024, SLOT))
        slot, view = ring.begin_write()
        # Fill in two halves so a reader racing the writer would see mixed frame numbers.
        half = size // 2
        view[:half] = bytes([n % 251]) * half
        view[half:size] = bytes([n % 251]) * (size - half)
        ring.end_write(slot, frame_no=n, ts_capture=time.time(), width=size, height=1,
                       len0=size)
        started.set()
    ring.close()


def _reader(name: str, seconds: float, started: Event, out: mp.Queue) -> None:
    """Reads for `seconds` once the writer is writing (it writes all that time)."""
    ring = FrameRing.attach(name)
    good = torn = 0
    bad = 0
    last = 0
    seen: set[int] = set()
    started.wait(60)
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
        seen.add(meta.counter)
        expected = bytes([meta.frame_no % 251]) * meta.len0
        if len(data) != meta.width or data != expected:
            bad += 1
        good += 1
    ring.close()
    out.put((good, torn, bad, len(seen)))


def test_no_torn_frame_is_ever_read() -> None:
    """Readers only ever get a payload that matches its own header, in publish order."""
    ctx = mp.get_context("spawn")
    ring = FrameRing.create(segment_name(os.getpid(), "test-hammer"), nslots=2, capacity=SLOT)
    try:
        q: mp.Queue = ctx.Queue()
        started, stop = ctx.Event(), ctx.Event()
        readers = [ctx.Process(target=_reader, args=(ring.name, 2.5, started, q))
                   for _ in range(2)]
        writer = ctx.Process(target=_writer, args=(ring.name, started, stop))
        writer.start()
        for r in readers:
            r.start()
        try:
            results = [q.get(timeout=90) for _ in readers]
        finally:
            stop.set()  # the writer wrote for as long as any reader read
        for p in [*readers, writer]:
            p.join(30)
            assert p.exitcode == 0
        for good, _torn, bad, distinct in results:
            assert bad == 0
            # Each reader raced a live writer: it saw the ring move under it, so the
            # seqlock was exercised (however often the scheduler let them collide; the
            # collision itself is forced in test_a_copy_overtaken_by_the_writer_is_refused).
            assert good > 0 and distinct > 1, (good, distinct)
    finally:
        ring.close()
    assert not os.path.exists(f"/dev/shm/{ring.name}")


def test_a_copy_overtaken_by_the_writer_is_refused() -> None:
    """The race the hammer test hopes for, forced: a reader reads a slot's header, the
    writer laps the ring and rewrites that slot, and the reader's copy is refused."""
    ring = FrameRing.create(segment_name(os.getpid(), "test-lap"), nslots=2, capacity=16)
    try:
        ring.publish(b"one", frame_no=1, ts_capture=1.0, width=3, height=1)
        counter, slot = ring.latest()
        seq, meta = ring.read_meta(slot, counter)
        assert ring.still_valid(slot, seq)
        ring.publish(b"two", frame_no=2, ts_capture=2.0, width=3, height=1)
        assert ring.still_valid(slot, seq)  # the other slot was written
        w_slot, view = ring.begin_write()  # the lap: this reader's slot, mid-write
        assert w_slot == slot
        assert not ring.still_valid(slot, seq)
        view[:5] = b"three"
        ring.end_write(w_slot, frame_no=3, ts_capture=3.0, width=5, height=1, len0=5)
        view.release()
        assert not ring.still_valid(slot, seq)  # and after it: a new version of the slot
        meta, data = ring.read_latest()
        assert (meta.frame_no, data) == (3, b"three")
    finally:
        ring.close()


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


def test_recent_metas_lists_the_frames_held_newest_first() -> None:
    ring = FrameRing.create(segment_name(os.getpid(), "test-recent"), nslots=3, capacity=16)
    try:
        assert ring.recent_metas() == []
        for n in range(1, 6):
            ring.publish(b"abc", frame_no=n, ts_capture=float(n), width=3, height=1)
        assert [m.frame_no for m in ring.recent_metas()] == [5, 4, 3]
        assert [m.counter for m in ring.recent_metas()] == [5, 4, 3]
        slot, view = ring.begin_write()  # the oldest slot is being rewritten: left out
        assert [m.frame_no for m in ring.recent_metas()] == [5, 4]
        view.release()
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


def test_a_spare_slot_is_claimed_once_its_camera_is_named() -> None:
    owners = [Control.create(segment_name(os.getpid(), f"test-slot{i}")) for i in range(2)]
    try:
        slots = [(Control.attach(c.name), f"slot{i}") for i, c in enumerate(owners)]
        assert claimed(slots) == [] and len(slots) == 2
        name_slot(owners[1], "cam-b")
        assert claimed(slots) == [("cam-b", "slot1")]
        assert [kept for _, kept in slots] == ["slot0"]  # the named one left the list
        assert claimed(slots) == []
    finally:
        for control, _ in slots:
            control.close()
        for c in owners:
            c.close()


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
