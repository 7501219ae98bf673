"""Shared-memory frame rings with a seqlock per slot.

Pixels never cross a pipe or a pickling queue: a writer fills one of N slots in a
`multiprocessing.shared_memory` segment and publishes its index; readers copy (or view)
the newest slot and check its sequence number afterwards, so a torn read is detected
and retried instead of being used. One writer per ring; any number of readers.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = 0x4A4D5352  # "RSMJ"
VERSION = 1
SEGMENT_PREFIX = "rsmjpeg"

# Segment header: magic, version, nslots, capacity, owner pid, published counter, latest slot.
_SEG = struct.Struct("<IIIQIQI")
_SEG_SIZE = 64
# Slot header: seq, frame_no, ts_capture, ts_aux1, ts_aux2, depth_scale, width, height,
# len0, len1, flags.
_SLOT = struct.Struct("<QQddddIIIII")
_SLOT_SIZE = 128
_SEQ = struct.Struct("<Q")
_PUB = struct.Struct("<QI")
_PUB_OFFSET = 24

FLAG_HAS_DEPTH = 1
FLAG_NO_SIGNAL = 2
FLAG_KEEPALIVE = 4
FLAG_KEYFRAME = 8  # H.264 ring: the access unit is an IDR with SPS/PPS


class TornRead(Exception):
    """The slot was rewritten while it was being read."""


@dataclass(frozen=True)
class SlotMeta:
    """Everything a ring slot says about its frame, besides the payload."""

    counter: int
    frame_no: int
    ts_capture: float
    ts_aux1: float
    ts_aux2: float
    depth_scale: float
    width: int
    height: int
    len0: int
    len1: int
    flags: int


def segment_name(owner_pid: int, role: str) -> str:
    """Name of a segment: the owner's pid makes stale ones easy to find and remove."""
    return f"{SEGMENT_PREFIX}-{owner_pid}-{role}"


def cleanup_stale_segments(shm_dir: str = "/dev/shm") -> list[str]:
    """Unlink segments of ours whose owner process is gone (e.g. after a SIGKILL)."""
    removed: list[str] = []
    pattern = re.compile(rf"^{SEGMENT_PREFIX}-(\d+)-[\w.-]+$")
    try:
        entries = os.listdir(shm_dir)
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry)
        if not m:
            continue
        pid = int(m.group(1))
        if _pid_alive(pid):
            continue
        try:
            (Path(shm_dir) / entry).unlink()
            removed.append(entry)
        except OSError:
            pass
    if removed:
        log.info("removed %d stale shared-memory segment(s) of a dead instance", len(removed))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FrameRing:
    """N slots of `capacity` payload bytes; the newest published slot is what readers see."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm = shm
        self.owner = owner
        self.buf = shm.buf
        magic, version, nslots, capacity, pid, _, _ = _SEG.unpack_from(self.buf, 0)
        if magic != MAGIC or version != VERSION:
            raise ValueError(f"segment {shm.name} is not a frame ring of version {VERSION}")
        self.nslots = nslots
        self.capacity = capacity
        self.owner_pid = pid
        self._stride = _SLOT_SIZE + capacity
        self._next = 0

    @classmethod
    def create(cls, name: str, nslots: int, capacity: int) -> FrameRing:
        """Create (and own) a ring; the creator must call `unlink()` on the way out."""
        size = _SEG_SIZE + nslots * (_SLOT_SIZE + capacity)
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        _SEG.pack_into(shm.buf, 0, MAGIC, VERSION, nslots, capacity, os.getpid(), 0, 0)
        for i in range(nslots):
            off = _SEG_SIZE + i * (_SLOT_SIZE + capacity)
            _SLOT.pack_into(shm.buf, off, 0, 0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0)
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name: str) -> FrameRing:
        """Attach to an existing ring created by another process."""
        return cls(shared_memory.SharedMemory(name=name, create=False), owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def _slot_off(self, slot: int) -> int:
        return _SEG_SIZE + slot * self._stride

    def payload(self, slot: int) -> memoryview:
        """Writable view of a slot's payload area."""
        off = self._slot_off(slot) + _SLOT_SIZE
        return self.buf[off : off + self.capacity]

    # -- writer -------------------------------------------------------------------
    def begin_write(self) -> tuple[int, memoryview]:
        """Claim the next slot for writing (seq goes odd) and return it with its payload."""
        counter, latest = _PUB.unpack_from(self.buf, _PUB_OFFSET)
        slot = (latest + 1) % self.nslots if counter else 0
        off = self._slot_off(slot)
        (seq,) = _SEQ.unpack_from(self.buf, off)
        _SEQ.pack_into(self.buf, off, seq | 1 if seq % 2 == 0 else seq + 2)
        self._next = slot
        return slot, self.payload(slot)

    def end_write(
        self,
        slot: int,
        *,
        frame_no: int,
        ts_capture: float,
        width: int,
        height: int,
        len0: int,
        len1: int = 0,
        flags: int = 0,
        ts_aux1: float = 0.0,
        ts_aux2: float = 0.0,
        depth_scale: float = 0.0,
    ) -> int:
        """Fill in the slot header, close the seqlock (seq even) and publish the slot."""
        off = self._slot_off(slot)
        (seq,) = _SEQ.unpack_from(self.buf, off)
        _SLOT.pack_into(
            self.buf, off, seq, frame_no, ts_capture, ts_aux1, ts_aux2, depth_scale,
            width, height, len0, len1, flags,
        )
        _SEQ.pack_into(self.buf, off, seq + 1)
        counter, _ = _PUB.unpack_from(self.buf, _PUB_OFFSET)
        _PUB.pack_into(self.buf, _PUB_OFFSET, counter + 1, slot)
        return counter + 1

    def publish(self, data: bytes | memoryview | np.ndarray, **meta: float | int) -> int:
        """Write one payload into the next slot and publish it; returns the new counter."""
        n = len(data) if not isinstance(data, np.ndarray) else data.nbytes
        if n > self.capacity:
            raise ValueError(f"payload of {n} bytes exceeds slot capacity {self.capacity}")
        slot, view = self.begin_write()
        view[:n] = data if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
        return self.end_write(slot, len0=n, **meta)  # type: ignore[arg-type]

    # -- readers ------------------------------------------------------------------
    def counter(self) -> int:
        """How many frames were ever published (0 = none yet)."""
        return _PUB.unpack_from(self.buf, _PUB_OFFSET)[0]

    def latest(self) -> tuple[int, int]:
        """(counter, slot) of the newest published frame."""
        return _PUB.unpack_from(self.buf, _PUB_OFFSET)

    def read_meta(self, slot: int, counter: int) -> tuple[int, SlotMeta]:
        """Return (seq, meta) of a slot; raises TornRead while the slot is being written."""
        fields = _SLOT.unpack_from(self.buf, self._slot_off(slot))
        seq = fields[0]
        if seq % 2:
            raise TornRead
        return seq, SlotMeta(counter, *fields[1:])

    def recent_metas(self) -> list[SlotMeta]:
        """The header of every frame the ring still holds, newest first (a slot being
        rewritten is left out): what a reader needs of recent frames without their bytes."""
        counter, _ = self.latest()
        out = []
        for c in range(counter, max(counter - self.nslots, 0), -1):
            slot = (c - 1) % self.nslots
            try:
                seq, meta = self.read_meta(slot, c)
            except TornRead:
                continue
            if self.still_valid(slot, seq) and self.counter() - c < self.nslots:
                out.append(meta)
        return out

    def still_valid(self, slot: int, seq: int) -> bool:
        """True while the slot has not been rewritten since `seq` was read."""
        return _SEQ.unpack_from(self.buf, self._slot_off(slot))[0] == seq

    def read_latest(self, retries: int = 8) -> tuple[SlotMeta, bytes] | None:
        """Copy out the newest frame (meta, payload bytes of len0+len1), or None if none yet."""
        for _ in range(retries):
            counter, slot = self.latest()
            if counter == 0:
                return None
            try:
                return self._copy(slot, counter)
            except TornRead:
                continue
        return None

    def _copy(self, slot: int, counter: int) -> tuple[SlotMeta, bytes]:
        """(meta, payload) of a slot, copied under its seqlock; TornRead if it moved."""
        seq, meta = self.read_meta(slot, counter)
        n = meta.len0 + meta.len1
        if n > self.capacity:
            raise TornRead
        off = self._slot_off(slot) + _SLOT_SIZE
        data = bytes(self.buf[off : off + n])
        if not self.still_valid(slot, seq):
            raise TornRead
        return meta, data

    def read_counter(self, counter: int) -> tuple[SlotMeta, bytes] | None:
        """Copy out the frame published as `counter` (for readers that need every frame,
        in order); None once it has been overwritten or is not published yet."""
        if counter <= 0 or counter > self.counter():
            return None
        slot = (counter - 1) % self.nslots
        for _ in range(4):
            if self.counter() - counter >= self.nslots:
                return None
            try:
                got = self._copy(slot, counter)
            except TornRead:
                continue
            if self.counter() - counter < self.nslots:  # not lapped while copying
                return got
        return None

    def close(self) -> None:
        """Release this process's mapping (and remove the segment if we own it)."""
        self.buf = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:
            log.debug("segment %s still has exported views; leaving mapping to exit", self.name)
        if self.owner:
            self.unlink()

    def unlink(self) -> None:
        """Remove the segment name from /dev/shm (idempotent)."""
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass


class Follower:
    """Reads every slot of a ring in publishing order (a reader that needs each one, such
    as the IMU's), from the slot published after it was created; slots overwritten before
    it got to them are counted in `lost`."""

    def __init__(self, ring: FrameRing) -> None:
        self.ring = ring
        self.last = ring.counter()
        self.lost = 0

    def new(self) -> list[tuple[SlotMeta, bytes]]:
        """(meta, payload) of each slot published since the last call, oldest first."""
        top = self.ring.counter()
        if top - self.last > self.ring.nslots:
            self.lost += top - self.last - self.ring.nslots
            self.last = top - self.ring.nslots
        out = []
        while self.last < top:
            self.last += 1
            got = self.ring.read_counter(self.last)
            if got is None:
                self.lost += 1
                continue
            out.append(got)
        return out
