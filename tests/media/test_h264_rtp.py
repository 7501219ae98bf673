"""The H.264 encoder's settings and the RTP packetizer, checked by ffmpeg as the receiver."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, H264Encoder, nal_type, split_nals
from media.rtp import MAX_PAYLOAD, RtpSender, packetize, parse_feedback
from tests.conftest import require


def _frames(n: int, w: int = 320, h: int = 240) -> list[np.ndarray]:
    src = SyntheticSource(w, h, 30)
    src.open()
    out = []
    for _ in range(n):
        frame = src.read(1.0)
        assert frame is not None
        out.append(frame.color)
    return out


def test_keyframes_carry_sps_pps_every_gop_and_on_request() -> None:
    enc = H264Encoder(320, 240, 30, 500_000, 10)
    kinds = []
    for i, img in enumerate(_frames(25)):
        if i == 13:
            enc.force_keyframe()
        (au,) = enc.encode(img)
        types = [nal_type(n) for n in split_nals(au.data)]
        kinds.append(au.keyframe)
        if au.keyframe:
            assert types[:2] == [NAL_SPS, NAL_PPS] and NAL_IDR in types
            sps = bytes(split_nals(au.data)[0])
            assert sps[1] == 0x42 and sps[2] & 0x40, "not constrained baseline"
        else:
            assert NAL_IDR not in types and NAL_SPS not in types
    assert [i for i, k in enumerate(kinds) if k] == [0, 10, 13, 23]


def test_fu_a_fragments_reassemble() -> None:
    rng = np.random.default_rng(1)
    big = bytes([0x65]) + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    small = bytes([0x41, 1, 2, 3])
    payloads = packetize([small, big])
    assert payloads[0] == small
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    frags = payloads[1:]
    assert frags[0][1] & 0x80 and frags[-1][1] & 0x40
    assert not any(f[1] & 0xC0 for f in frags[1:-1])
    rebuilt = bytes([(frags[0][0] & 0xE0) | (frags[0][1] & 0x1F)]) + b"".join(f[2:] for f in frags)
    assert rebuilt == big


def test_feedback_parser_finds_pli_and_fir() -> None:
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, 1, 2, 3, 4, 5, 6)
    pli = struct.pack("!BBHII", 0x81, 206, 2, 7, 1)
    fir = struct.pack("!BBHIIII", 0x84, 206, 4, 7, 0, 1, 0)
    nack = struct.pack("!BBHIII", 0x81, 205, 3, 7, 1, 0)
    assert parse_feedback(pli) and parse_feedback(fir) and parse_feedback(sr + pli)
    assert not parse_feedback(sr) and not parse_feedback(nack)
    assert not parse_feedback(b"\xff\x00") and not parse_feedback(b"")


def _udp_bound(port: int) -> bool:
    with open("/proc/net/udp") as f:
        return any(line.split()[1].endswith(f":{port:04X}") for line in list(f)[1:])


def test_ffmpeg_decodes_our_rtp(tmp_path) -> None:
    """ffmpeg, a receiver we did not write, decodes the packetized stream frame by frame."""
    ffmpeg = require("ffmpeg")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sdp = tmp_path / "in.sdp"
    sdp.write_text("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=t\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                   "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n")
    out = tmp_path / "frames.txt"
    proc = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
         "-i", str(sdp), "-frames:v", "20", "-f", "framemd5", str(out)],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    frames = _frames(30, 640, 480)
    enc = H264Encoder(640, 480, 30, 1_000_000, 5)
    # Send only once ffmpeg listens, so the first packet it gets is the first IDR's.
    deadline = time.monotonic() + 15
    while not _udp_bound(port):
        assert proc.poll() is None and time.monotonic() < deadline, "ffmpeg did not listen"
        time.sleep(0.02)
    sender = RtpSender("127.0.0.1", port, port + 1)
    try:
        deadline = time.monotonic() + 20
        i = 0
        while proc.poll() is None and time.monotonic() < deadline:
            for au in enc.encode(frames[i % len(frames)]):  # big IDRs: FU-A at work
                sender.send(au.data, time.time())
            i += 1
            time.sleep(1 / 30)
        proc.wait(5)
    finally:
        sender.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, err
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) == 20
    assert "error" not in err.lower(), err


@pytest.mark.parametrize("size", [(321, 240), (320, 241)])
def test_odd_sizes_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="even"):
        H264Encoder(*size, 30, 500_000, 30)
