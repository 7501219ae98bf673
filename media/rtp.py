"""H.264 access units as RTP (RFC 6184, packetization mode 1) over UDP, with RTCP both ways.

Small NAL units go out whole, larger ones as FU-A fragments; the marker bit closes each
access unit. The RTP clock is the frame's capture time at 90 kHz, so every consumer of
the ring agrees on timing. From the same socket we send a sender report to the
gateway's RTCP port once a second; that is how Janus learns where to send its picture
loss indications (PLI) and full intra requests (FIR), which we answer with a keyframe.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time

from media.h264 import NAL_AUD, split_nals

log = logging.getLogger("rtp")

PAYLOAD_TYPE = 96
MAX_PAYLOAD = 1200  # bytes of RTP payload: well under any path MTU, WebRTC's usual size
CLOCK = 90_000
SR_PERIOD_S = 1.0
# A keyframe is 100+ packets; a receiver socket holds ~90 (212 KB of loopback datagrams),
# so a big access unit goes out in bursts spread over up to PACE_SPREAD_S: a gateway
# that is briefly not scheduled then still finds room for all of it.
PACE_BURST = 24
PACE_SPREAD_S = 0.02
_NTP_EPOCH = 2_208_988_800
RTCP_SR = 200
RTCP_RTPFB = 205
RTCP_PSFB = 206
PSFB_PLI = 1
PSFB_FIR = 4


def packetize(nals: list[memoryview] | list[bytes], mtu: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one access unit: single NAL units or FU-A fragments."""
    out: list[bytes] = []
    for unit in nals:
        nal = bytes(unit)
        if len(nal) <= mtu:
            out.append(nal)
            continue
        header = nal[0]
        fu_indicator = (header & 0xE0) | 28
        kind = header & 0x1F
        body = nal[1:]
        step = mtu - 2
        for off in range(0, len(body), step):
            start = off == 0
            end = off + step >= len(body)
            fu_header = (0x80 if start else 0) | (0x40 if end else 0) | kind
            out.append(bytes((fu_indicator, fu_header)) + body[off:off + step])
    return out


def parse_feedback(data: bytes) -> bool:
    """True if a (compound) RTCP packet asks for a keyframe (PLI or FIR)."""
    off = 0
    while off + 4 <= len(data):
        first, pt, length = struct.unpack_from("!BBH", data, off)
        if first >> 6 != 2:
            return False
        fmt = first & 0x1F
        if pt == RTCP_PSFB and fmt in (PSFB_PLI, PSFB_FIR):
            return True
        off += 4 * (length + 1)
    return False


class RtpSender:
    """Sends access units as RTP to (host, port) and keeps RTCP going with (host, rtcp_port)."""

    def __init__(self, host: str, port: int, rtcp_port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.dest = (host, port)
        self.rtcp_dest = (host, rtcp_port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(family, socket.SOCK_DGRAM)
        self.rtcp.setblocking(False)
        self.ssrc = int.from_bytes(os.urandom(4), "big") or 1
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.packets = 0
        self.octets = 0
        self.last_ts = 0
        self._last_sr = 0.0

    def fileno(self) -> int:
        """The RTCP socket, for a select()/poll() on keyframe requests."""
        return self.rtcp.fileno()

    def send(self, au: bytes, ts_capture: float) -> int:
        """Send one access unit; returns the number of packets."""
        ts = int(ts_capture * CLOCK) & 0xFFFFFFFF
        nals = [n for n in split_nals(au) if n[0] & 0x1F != NAL_AUD]
        payloads = packetize(nals)
        bursts = (len(payloads) + PACE_BURST - 1) // PACE_BURST
        gap = PACE_SPREAD_S / (bursts - 1) if bursts > 1 else 0.0
        for i, payload in enumerate(payloads):
            if i and i % PACE_BURST == 0:
                time.sleep(gap)
            marker = 0x80 if i == len(payloads) - 1 else 0
            header = struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, self.seq, ts, self.ssrc)
            self.seq = (self.seq + 1) & 0xFFFF
            try:
                self.sock.sendto(header + payload, self.dest)
            except OSError as exc:  # nobody listening (ECONNREFUSED) or a full buffer
                log.debug("RTP send: %s", exc)
                continue
            self.packets += 1
            self.octets += len(payload)
        self.last_ts = ts
        self.sender_report()
        return len(payloads)

    def sender_report(self, force: bool = False) -> None:
        """An RTCP SR at most once a second: it also tells Janus where feedback goes."""
        now = time.time()
        if not force and now - self._last_sr < SR_PERIOD_S:
            return
        self._last_sr = now
        ntp = now + _NTP_EPOCH
        sec = int(ntp)
        frac = int((ntp - sec) * (1 << 32)) & 0xFFFFFFFF
        sr = struct.pack("!BBHIIIIII", 0x80, RTCP_SR, 6, self.ssrc, sec & 0xFFFFFFFF, frac,
                         self.last_ts, self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF)
        try:
            self.rtcp.sendto(sr, self.rtcp_dest)
        except OSError as exc:
            log.debug("RTCP send: %s", exc)

    def keyframe_requested(self) -> bool:
        """Read pending RTCP without blocking; True if any of it asks for a keyframe."""
        asked = False
        while True:
            try:
                data = self.rtcp.recv(2048)
            except (BlockingIOError, InterruptedError):
                return asked
            except OSError:  # ICMP port unreachable reported on the socket
                return asked
            asked = parse_feedback(data) or asked

    def close(self) -> None:
        self.sock.close()
        self.rtcp.close()
