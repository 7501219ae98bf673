"""The MPEG-TS packetizer: packet structure for every payload length, and ffprobe's reading."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from media.h264 import H264Encoder
from media.ts import AUD, PMT_PID, VIDEO_PID, TsMuxer, crc32_mpeg, pts_of
from tests.conftest import require


def _units(ts: bytes) -> list[tuple[bytes, bool]]:
    """PES payloads of the video PID (header removed) with their random-access flag,
    checking sync bytes and continuity counters on the way."""
    assert len(ts) % 188 == 0
    units: list[tuple[bytearray, bool]] = []
    cc: dict[int, int] = {}
    for i in range(0, len(ts), 188):
        pkt = ts[i:i + 188]
        assert pkt[0] == 0x47
        pid = (pkt[1] & 0x1F) << 8 | pkt[2]
        if pid in cc:
            assert pkt[3] & 0x0F == (cc[pid] + 1) & 0x0F, "continuity counter"
        cc[pid] = pkt[3] & 0x0F
        has_af = bool(pkt[3] & 0x20)
        off = 4 + (1 + pkt[4] if has_af else 0)
        if pid != VIDEO_PID:
            continue
        if pkt[1] & 0x40:
            units.append((bytearray(), has_af and pkt[4] > 0 and bool(pkt[5] & 0x40)))
        units[-1][0].extend(pkt[off:])
    out = []
    for pes, ra in units:
        assert pes[:4] == b"\x00\x00\x01\xe0"
        out.append((bytes(pes[9 + pes[8]:]), ra))
    return out


def test_every_payload_length_round_trips() -> None:
    # Lengths around packet boundaries hit each stuffing case (none, one byte, many).
    mux = TsMuxer()
    sizes = list(range(1, 400)) + [184 * k + d for k in (5, 50) for d in (-2, -1, 0, 1, 2)]
    rng = np.random.default_rng(1)
    aus = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    stream = b"".join(mux.mux(au, 1000.0 + i / 30, i % 50 == 0) for i, au in enumerate(aus))
    got = _units(stream)
    assert [u for u, _ in got] == [AUD + au for au in aus]
    assert [ra for _, ra in got] == [i % 50 == 0 for i in range(len(aus))]


def test_tables_carry_valid_crcs() -> None:
    tables = TsMuxer().tables()
    for i, pid in ((0, 0), (188, PMT_PID)):
        pkt = tables[i:i + 188]
        assert (pkt[1] & 0x1F) << 8 | pkt[2] == pid
        off = 4 + (1 + pkt[4] if pkt[3] & 0x20 else 0)
        sec = pkt[off + 1 + pkt[off]:]  # after the pointer field
        length = ((sec[1] & 0x0F) << 8) | sec[2]
        assert crc32_mpeg(sec[:3 + length]) == 0  # CRC over the section incl. its CRC


def test_ffprobe_reads_h264_with_capture_times_as_pts(tmp_path: Path) -> None:
    ffprobe = require("ffprobe")
    enc = H264Encoder(320, 240, 30, 500_000, 15)
    mux = TsMuxer()
    t0 = 1_796_000_000.25
    out = bytearray()
    for i in range(45):
        img = np.zeros((240, 320, 3), np.uint8)
        img[:, (i * 7) % 320:] = (40, 160, 220)
        for au in enc.encode(img):
            out += mux.mux(au.data, t0 + i / 30, au.keyframe)
    path = tmp_path / "a.ts"
    path.write_bytes(bytes(out))
    res = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time,key_frame,width,height", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.stderr == ""
    rows = [line.split(",") for line in res.stdout.split()]
    assert len(rows) == 45
    assert rows[0][0] == "1" and rows[15][0] == "1"  # key_frame
    assert {(r[2], r[3]) for r in rows} == {("320", "240")}
    assert [round(float(r[1]) * 90_000) for r in rows] == [pts_of(t0 + i / 30)
                                                           for i in range(45)]


@pytest.mark.parametrize("t", [0.0, 95443.7, 1_796_000_000.123])
def test_pts_is_the_time_modulo_2_to_the_33(t: float) -> None:
    assert pts_of(t) == round(t * 90_000) % (1 << 33)
