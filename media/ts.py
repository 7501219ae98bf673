"""A small MPEG-TS packetizer: H.264 access units in, 188-byte transport packets out.

Enough of ISO 13818-1 for one program of H.264 streams: colour on VIDEO_PID and, when the
push carries it, the depth video on DEPTH_PID (stream #1 to ffmpeg; it describes itself
in an SEI: media/depth_video.py). PAT and PMT come before every keyframe (a receiver can
join at any IDR), one PES per access unit with an access unit delimiter, PCR on the
colour PID, and the frame's capture time as its PTS (90 kHz, modulo 2**33, about 26.5 h),
so a receiver can tell how old each frame is and pair colour with depth. No re-encoding,
no buffering: each call returns the bytes of one frame, ready to write.
"""

from __future__ import annotations

PACKET = 188
PMT_PID = 0x1000
VIDEO_PID = 0x100
DEPTH_PID = 0x101
STREAM_ID = {VIDEO_PID: 0xE0, DEPTH_PID: 0xE1}
PROGRAM = 1
STREAM_TYPE_H264 = 0x1B
CLOCK = 90_000
PTS_MOD = 1 << 33
PCR_LEAD = CLOCK // 10  # the PCR trails the PTS by 100 ms: time for the receiver to decode
AUD = b"\x00\x00\x00\x01\x09\xf0"


def _crc_table() -> list[int]:
    out = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else c << 1
        out.append(c & 0xFFFFFFFF)
    return out


_CRC = _crc_table()


def crc32_mpeg(data: bytes) -> int:
    """CRC-32/MPEG-2 of a PSI section (polynomial 0x04C11DB7, no reflection)."""
    c = 0xFFFFFFFF
    for b in data:
        c = ((c << 8) & 0xFFFFFFFF) ^ _CRC[((c >> 24) ^ b) & 0xFF]
    return c


def pts_of(t: float) -> int:
    """A time in seconds (e.g. since the epoch) as a 33-bit 90 kHz timestamp."""
    return int(round(t * CLOCK)) % PTS_MOD


def _section(table_id: int, ext: int, body: bytes) -> bytes:
    length = 5 + len(body) + 4
    head = bytes([table_id, 0xB0 | (length >> 8), length & 0xFF, ext >> 8, ext & 0xFF,
                  0xC1, 0, 0])
    sec = head + body
    return sec + crc32_mpeg(sec).to_bytes(4, "big")


def _pts_bytes(pts: int, marker: int = 0x2) -> bytes:
    return bytes([(marker << 4) | ((pts >> 29) & 0x0E) | 1, (pts >> 22) & 0xFF,
                  ((pts >> 14) & 0xFE) | 1, (pts >> 7) & 0xFF, ((pts << 1) & 0xFE) | 1])


class TsMuxer:
    """Packetizes the colour H.264 stream (and the depth video's, with `depth`); keeps the
    continuity counters."""

    def __init__(self, depth: bool = False) -> None:
        self.pids = (VIDEO_PID, DEPTH_PID) if depth else (VIDEO_PID,)
        self._cc = {0: 0, PMT_PID: 0, **dict.fromkeys(self.pids, 0)}

    def _packets(self, pid: int, payload: bytes, *, pcr: int | None = None,
                 random_access: bool = False) -> bytes:
        """`payload` split into packets of `pid`; the first starts the unit (PUSI)."""
        out = bytearray()
        pos = 0
        first = True
        while first or pos < len(payload):
            af: bytearray | None = None
            if first and (pcr is not None or random_access):
                af = bytearray([(0x40 if random_access else 0) | (0x10 if pcr is not None
                                                                   else 0)])
                if pcr is not None:
                    base = pcr % PTS_MOD
                    af += bytes([base >> 25 & 0xFF, base >> 17 & 0xFF, base >> 9 & 0xFF,
                                 base >> 1 & 0xFF, (base & 1) << 7 | 0x7E, 0])
            room = PACKET - 4 - (1 + len(af) if af is not None else 0)
            chunk = payload[pos:pos + room]
            pad = room - len(chunk)
            if pad and af is not None:
                af += b"\xff" * pad
            elif pad == 1:
                af = bytearray()  # adaptation_field_length 0: exactly one byte of stuffing
            elif pad:
                af = bytearray([0]) + b"\xff" * (pad - 2)
            cc = self._cc[pid]
            self._cc[pid] = (cc + 1) & 0x0F
            ctrl = 0x30 if af is not None else 0x10
            out += bytes([0x47, (0x40 if first else 0) | (pid >> 8), pid & 0xFF, ctrl | cc])
            if af is not None:
                out += bytes([len(af)]) + af
            out += chunk
            pos += len(chunk)
            first = False
        return bytes(out)

    def tables(self) -> bytes:
        """PAT and PMT, one packet each."""
        pat = _section(0x00, 1, bytes([PROGRAM >> 8, PROGRAM & 0xFF,
                                       0xE0 | PMT_PID >> 8, PMT_PID & 0xFF]))
        pmt_body = bytes([0xE0 | VIDEO_PID >> 8, VIDEO_PID & 0xFF, 0xF0, 0])  # PCR PID
        for pid in self.pids:
            pmt_body += bytes([STREAM_TYPE_H264, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, 0])
        pmt = _section(0x02, PROGRAM, pmt_body)
        return (self._packets(0, b"\x00" + pat) + self._packets(PMT_PID, b"\x00" + pmt))

    def mux(self, au: bytes, t: float, keyframe: bool, pid: int = VIDEO_PID) -> bytes:
        """One access unit (Annex B) of stream `pid` captured at time `t` (seconds) as TS
        packets."""
        pts = pts_of(t)
        header = bytes([0, 0, 1, STREAM_ID[pid], 0, 0, 0x80, 0x80, 5]) + _pts_bytes(pts)
        pcr = (pts - PCR_LEAD) % PTS_MOD if pid == VIDEO_PID else None
        body = self._packets(pid, header + AUD + au, pcr=pcr, random_access=keyframe)
        return (self.tables() + body) if keyframe else body
