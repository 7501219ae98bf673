"""The H.264 push: every access unit of the H.264 ring, in order, to one destination.

`https://`, `http://`: MPEG-TS in the body of one chunked POST (what
`ffmpeg -listen 1 -f mpegts -i http://...` reads); `tcp://`: the same TS on a plain
socket; `rtmp://`, `rtmps://`: the distribution's ffmpeg remuxes our TS to FLV and
publishes it (no encoder runs there); `rtsp://`: the same ffmpeg announces and records
it to an RTSP server (RTP over TCP). The stage encodes once; the push announces itself
in `sink_h264`, asks for a keyframe on every (re)connect so the receiver starts at once,
and asks for the bit rate the link carries (`push_h264_bitrate`, at most --h264-bitrate
and --max-bitrate). Unlike JPEGs, access units cannot be skipped one by one: when the link
falls a whole ring behind, the push drops to the next keyframe and asks for one.

With `--depth` the depth video (encoder/depth_video_stage.py) goes into the same TS as a
second stream, the two interleaved by capture time; the push announces itself in
`sink_dv`, and colour is asked for what the link carries less what depth takes.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as MpConnection
from urllib.parse import urlsplit

from media.ts import DEPTH_PID, VIDEO_PID, TsMuxer
from media.urls import parse_destination, redact
from pipeline.child import CannotStart, drain
from pipeline.control import Control
from pipeline.procs import stop_process
from pipeline.shm import FLAG_KEYFRAME, FrameRing, SlotMeta
from push.adapt import Adapter
from push.connection import CONNECT_TIMEOUT_S, STALL_TIMEOUT_S, Connection, Output, PushFailed
from push.options import PushOptions
from push.pusher import WAIT_S, Pusher, Stats

log = logging.getLogger("push")

MEDIA_SCHEMES = ("rtmp", "rtmps", "rtsp")
MUXER = {"rtmp": "flv", "rtmps": "flv", "rtsp": "rtsp"}
MIN_H264_BITRATE = 100_000
START_BITRATE = 1_500_000  # an adaptive push starts here (or lower) and climbs to what fits
STEP_UP = 1.25             # at most this much more per tick while the link has room
# Share of the link the encoder may plan for: below MJPEG's, since frames cannot be
# skipped and each keyframe's burst has to drain in the slack.
H264_HEADROOM = 0.7
FFMPEG_EXIT_WAIT_S = 2.0


def h264_cap(opts: PushOptions) -> int:
    """The highest bit rate the push may ask for: --h264-bitrate, capped by --max-bitrate."""
    cap = opts.h264.bitrate
    if opts.max_bitrate:
        cap = min(cap, int(opts.max_bitrate))
    return max(cap, MIN_H264_BITRATE)


class FfmpegOutput:
    """`ffmpeg -f mpegts -i pipe:0 -c copy -f flv|rtsp URL`: our TS in, to a media server.

    Same interface as Connection. For RTMP, reachability is checked with a plain TCP
    connect first, so a server that is down is retried and logged like any other
    destination (an RTSP receiver may take one connection only, e.g.
    `ffmpeg -rtsp_flags listen`: there ffmpeg's own failure says so). ffmpeg's errors
    are logged with the URL's credentials removed.
    """

    def __init__(self, opts: PushOptions, beat: Callable[[], None] | None = None) -> None:
        self.url, self.beat = opts.url, beat
        self.scheme, self.host, self.port, _ = parse_destination(opts.url, MEDIA_SCHEMES)
        self.sock = None  # no socket of ours: the link is measured by the pipe's progress
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=8)
        # Connected means ffmpeg opened its output (it says "Output #0"), which it does
        # only after reading the first access units: the push reports it from there.
        self.deferred = True
        self.established = threading.Event()
        password = urlsplit(opts.url).password
        self._secrets = [s for s in (opts.url, password) if s]

    def _clean(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, redact(self.url) if secret == self.url else "***")
        return line

    def open(self) -> None:
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise CannotStart("rtmp:// needs ffmpeg (Debian: apt install ffmpeg)")
        if self.scheme != "rtsp":
            try:
                socket.create_connection((self.host, self.port),
                                         timeout=CONNECT_TIMEOUT_S).close()
            except OSError as exc:
                raise PushFailed(f"cannot connect: {exc.strerror or exc}") from None
        argv = [exe, "-hide_banner", "-nostats", "-loglevel", "info",
                "-fflags", "nobuffer", "-probesize", "65536", "-analyzeduration", "0",
                "-f", "mpegts", "-i", "pipe:0", "-c", "copy", "-f", MUXER[self.scheme]]
        if self.scheme == "rtsp":
            argv += ["-rtsp_transport", "tcp", "-timeout", str(int(STALL_TIMEOUT_S * 1e6))]
        else:
            argv += ["-flvflags", "no_duration_filesize",
                     "-rw_timeout", str(int(STALL_TIMEOUT_S * 1e6))]
        argv.append(self.url)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)
        threading.Thread(target=self._read_errors, args=(self.proc,), daemon=True).start()

    def _read_errors(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for raw in proc.stderr:
                line = self._clean(raw.decode(errors="replace").strip())
                if line.startswith("Output #0"):
                    self.established.set()
                if line and not raw[:1].isspace():  # not the indented stream details
                    self.lines.append(line)
                    log.debug("ffmpeg: %s", line)

    def _failed(self) -> PushFailed:
        assert self.proc is not None
        try:
            self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            pass
        # The first complaint is the cause; ffmpeg's last lines are only its consequences.
        errors = [s for s in self.lines
                  if any(w in s.lower() for w in ("error", "fail", "refused", "unable", "denied",
                                                   "timed out", "not found", "invalid"))]
        why = errors[0] if errors else f"ffmpeg exited ({self.proc.returncode})"
        return PushFailed(f"media server: {why}")

    def wait_writable(self, timeout: float) -> bool:
        assert self.proc is not None and self.proc.stdin is not None
        if self.proc.poll() is not None:
            raise self._failed()
        _, writable, _ = select.select([], [self.proc.stdin], [], timeout)
        return bool(writable)

    def send_bytes(self, body: bytes) -> int:
        """Write all of `body` into ffmpeg; the stall rule is no progress for STALL_TIMEOUT_S."""
        assert self.proc is not None and self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(body)
        last = time.monotonic()
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            except (BrokenPipeError, OSError):
                raise self._failed() from None
            if n:
                view, last = view[n:], time.monotonic()
                if self.beat is not None:
                    self.beat()
                continue
            if self.proc.poll() is not None:
                raise self._failed()
            if time.monotonic() - last > STALL_TIMEOUT_S:
                raise PushFailed(f"stalled: no progress for {STALL_TIMEOUT_S:.0f} s")
            select.select([], [fd], [], 0.25)
        return len(body)

    def finish(self) -> None:
        """Let ffmpeg write out what it has and close the stream."""
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(FFMPEG_EXIT_WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, FFMPEG_EXIT_WAIT_S)
        if self.proc.stdin is not None:  # stderr: closed by its reader at EOF
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.proc = None


class UnitCursor:
    """One stream's place in its ring: every access unit in order, from a keyframe on. A
    reader lapped by the ring resumes at the next keyframe and asks for one (`ask`)."""

    def __init__(self, ring: FrameRing, pid: int, ask: Callable[[], None]) -> None:
        self.ring, self.pid, self.ask = ring, pid, ask
        self.scan = self.nxt = 0  # where to look for a keyframe; next unit (0: waiting)
        self.resyncs = 0
        self.pending: tuple[SlotMeta, bytes] | None = None

    def restart(self) -> None:
        """A new connection: start at the next keyframe."""
        self.scan, self.nxt, self.pending = self.ring.counter() + 1, 0, None

    def peek(self) -> tuple[SlotMeta, bytes] | None:
        """The next unit to send, or None (none yet, or waiting for a keyframe)."""
        if self.pending is not None:
            return self.pending
        latest = self.ring.counter()
        if self.nxt == 0:
            for c in range(max(self.scan, latest - self.ring.nslots + 2), latest + 1):
                got = self.ring.read_counter(c)
                if got is not None and got[0].flags & FLAG_KEYFRAME:
                    self.nxt = c
                    break
            self.scan = latest + 1
        if self.nxt == 0 or self.nxt > latest:
            return None
        self.pending = self.ring.read_counter(self.nxt)
        if self.pending is None:  # more than a ring behind: resume at a fresh keyframe
            self.resyncs += 1
            log.debug("fell %d access units behind; waiting for a keyframe",
                      self.ring.counter() - self.nxt)
            self.ask()
            self.nxt, self.scan = 0, self.ring.counter() + 1
        return self.pending

    def advance(self) -> None:
        self.nxt += 1
        self.pending = None


class H264Pusher(Pusher):
    """Push every access unit in order; follow the link with the encoder's bit rate."""

    def __init__(self, opts: PushOptions, ring: FrameRing, control: Control,
                 wake_r: MpConnection, stop: threading.Event, *,
                 beat: Callable[[], None], depth: FrameRing | None = None,
                 depth_wake_r: MpConnection | None = None) -> None:
        super().__init__(opts, ring, control, wake_r, stop, beat=beat)
        self.cap = h264_cap(opts)
        self.adapter = Adapter(opts.max_quality, opts.min_quality, opts.min_width,
                               self.cap) if opts.adapt else None
        self.requested = min(self.cap, START_BITRATE) if opts.adapt else self.cap
        self.cursors = [UnitCursor(ring, VIDEO_PID,
                                   lambda: self.control.add("push_h264_keyframes"))]
        if depth is not None:
            self.cursors.append(UnitCursor(depth, DEPTH_PID,
                                           lambda: self.control.add("push_dv_keyframes")))
        self.wakes = [w for w in (wake_r, depth_wake_r) if w is not None]
        # Per connection: the muxer, and whether "connected" is still due.
        self.mux = TsMuxer(depth=depth is not None)
        self.announce = False

    @property
    def resyncs(self) -> int:
        return sum(c.resyncs for c in self.cursors)

    def _begin(self) -> None:
        self.control["push_h264_bitrate"] = self.requested

    def _end(self) -> None:
        self.control["sink_h264"] = self.control["sink_dv"] = 0
        self.control["push_h264_bitrate"] = 0

    def _connection(self) -> Output:
        if urlsplit(self.opts.url).scheme in MEDIA_SCHEMES:
            return FfmpegOutput(self.opts, self.beat)
        return Connection(self.opts, self.beat)

    def _stream(self, conn: Output) -> None:
        # A consumer only while connected: the stages idle while the destination is down.
        depth = len(self.cursors) > 1
        self.control["sink_h264"] = 1
        self.control["sink_dv"] = int(depth)
        try:
            self.control.add("push_h264_keyframes")  # the receiver starts with a fresh IDR
            if depth:
                self.control.add("push_dv_keyframes")
            self.mux = TsMuxer(depth=depth)
            for cursor in self.cursors:
                cursor.restart()
            self.announce = getattr(conn, "deferred", False)
            super()._stream(conn)
        finally:
            self.control["sink_h264"] = self.control["sink_dv"] = 0

    def _step(self, conn: Output) -> None:
        ready = [(got[0].ts_capture, i) for i, c in enumerate(self.cursors)
                 if (got := c.peek()) is not None]
        if not ready:
            self._idle()
            self.progress = time.monotonic()  # nothing to send is not a stalled link
            return
        if not self._room(conn):
            return
        cursor = self.cursors[min(ready)[1]]  # the older capture first: streams interleave
        assert cursor.pending is not None
        meta, au = cursor.pending
        data = self.mux.mux(au, meta.ts_capture, bool(meta.flags & FLAG_KEYFRAME),
                            pid=cursor.pid)
        t_send = time.monotonic()
        n = conn.send_bytes(data)
        self._sent(meta, 0, n, t_send)
        cursor.advance()
        if self.announce and getattr(conn, "established", None) is not None \
                and conn.established.is_set():  # type: ignore[attr-defined]
            self.announce = False
            self._connected()

    def _idle(self) -> None:
        """Nothing new in either ring: wait up to WAIT_S for a stage's wake-up."""
        readable, _, _ = select.select([w.fileno() for w in self.wakes], [], [], WAIT_S)
        for w in self.wakes:
            if w.fileno() in readable:
                drain(w)

    def _adapt(self, m: dict[str, float]) -> None:
        """Fold one tick into the link estimate and ask the stage for a bit rate that fits."""
        ad = self.adapter
        if ad is None:
            return
        ad.update_capacity(sent_rate=m["sent_rate"], busy=m["busy"], delivery=m["delivery"])
        if not ad.capacity:
            return
        fit = ad.capacity * 8 * H264_HEADROOM
        if len(self.cursors) > 1:  # what depth takes of the link is not colour's
            fit = max(fit - self.control["dv_bps"], MIN_H264_BITRATE)
        want = min(fit, self.requested * STEP_UP)
        want = int(max(MIN_H264_BITRATE, min(self.cap, want)))
        log.debug("tick: sent %.2f Mbit/s busy %.0f%% delivery %.2f Mbit/s -> link %.2f "
                  "Mbit/s, asking %.2f Mbit/s", m["sent_rate"] * 8e-6, m["busy"] * 100,
                  m["delivery"] * 8e-6, ad.capacity * 8e-6, want * 1e-6)
        if abs(want - self.requested) > 0.03 * self.requested:
            self.requested = want
            self.control["push_h264_bitrate"] = want

    def _log_stats(self, st: Stats, now: float) -> None:
        dt = now - st.t0
        log.info("pushed %d access units (%.1f fps, %.2f Mbit/s%s, encoder asked for %.2f "
                 "Mbit/s), last %s, %d keyframe resyncs", self.sent, st.n / dt,
                 st.bytes * 8e-6 / dt, self._link(), self.requested * 1e-6, st.res,
                 self.resyncs)
        st.reset(now, self.ring.counter())
