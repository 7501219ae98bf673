"""The MJPEG push: the newest JPEG of one stream, whenever the link has room for it.

Multipart parts (`mpjpeg`) or bare concatenated JPEGs (`mjpeg`, and always on `tcp://`,
like a Raspberry Pi camera client) in the body of one chunked POST, which is what
`ffmpeg -listen 1 -i https://HOST:PORT` reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pipeline.control import Control
from pipeline.shm import FrameRing
from push.adapt import Adapter, TokenBucket, jpeg_quality
from push.connection import Connection
from push.options import PushOptions
from push.pusher import WAIT_S, Pusher, Stats

log = logging.getLogger("push")


class MjpegPusher(Pusher):
    """Push the newest JPEG whenever the link can take one; frames in between are skipped.

    At most about one frame waits in the kernel (NOTSENT_LOWAT): the next frame is taken
    from the ring only when the socket can take it, so on a slow link frames are dropped
    at the source, never queued. With `adapt`, the link is measured continuously and the
    encoder is asked for a quality and width that fit it (push/adapt.py).
    """

    def __init__(self, opts: PushOptions, ring: FrameRing, control: Control, wake_r: object,
                 stop: threading.Event, *, beat: Callable[[], None]) -> None:
        super().__init__(opts, ring, control, wake_r, stop, beat=beat)
        self.adapter = Adapter(opts.max_quality, opts.min_quality, opts.min_width,
                               opts.max_bitrate) if opts.adapt else None
        self.bucket = (TokenBucket(opts.max_bitrate / 8.0, max(opts.max_bitrate / 8.0 * 0.25,
                                                              32 * 1024))
                       if opts.max_bitrate else None)
        self._q_field = f"push_quality_{opts.stream}"
        self._w_field = f"push_width_{opts.stream}"
        self.last = 0  # ring counter of the last frame sent

    def _begin(self) -> None:
        """Announce the push as a consumer of its stream, from full size."""
        self.control[f"sink_{self.opts.stream}"] = 1
        self.control[self._q_field] = 0  # a restarted push starts from full size
        self.control[self._w_field] = 0

    def _end(self) -> None:
        self.control[self._q_field] = 0
        self.control[self._w_field] = 0

    def _stream(self, conn: Connection) -> None:  # type: ignore[override]
        self.last = self.ring.counter()
        super()._stream(conn)

    def _step(self, conn: Connection) -> None:  # type: ignore[override]
        # 1. Room in the kernel for a frame? Otherwise the link is the limit: wait.
        if not self._room(conn):
            return
        self.progress = time.monotonic()
        # 2. A frame newer than the last one sent?
        if self.ring.counter() == self.last:
            self._idle()
            return
        got = self.ring.read_latest()
        if got is None:
            return
        meta, jpeg = got
        # 3. --max-bitrate: wait for the bucket, then take whatever frame is newest.
        if self.bucket is not None:
            delay = self.bucket.wait_for(len(jpeg))
            if delay > 0:
                self.stop.wait(min(delay, WAIT_S))
                return
        self.last = meta.counter
        quality = jpeg_quality(jpeg)
        t_send = time.monotonic()
        n = conn.send(jpeg, meta, quality)
        self._sent(meta, quality, n, t_send)
        if self.adapter is not None:
            self.adapter.observe_frame(meta.width, quality, len(jpeg))

    def _adapt(self, m: dict[str, float]) -> None:
        """Fold one tick into the link estimate and ask the encoder for the chosen level."""
        ad = self.adapter
        if ad is None:
            return
        ad.update_capacity(sent_rate=m["sent_rate"], busy=m["busy"], delivery=m["delivery"])
        src_fps = self.control[f"encode_fps_{self.opts.stream}"]
        lv = ad.choose(src_fps)
        if lv is None:
            return
        log.debug("tick: sent %.2f Mbit/s busy %.0f%% delivery %.2f Mbit/s -> link %.2f "
                  "Mbit/s, budget %.0f B, %dw q%d", m["sent_rate"] * 8e-6, m["busy"] * 100,
                  m["delivery"] * 8e-6, ad.capacity * 8e-6, ad.budget(src_fps), lv.width,
                  lv.quality)
        full = lv.width >= ad.native
        self.control[self._w_field] = 0 if full else lv.width
        self.control[self._q_field] = 0 if lv.quality >= self.opts.max_quality else lv.quality

    def _log_stats(self, st: Stats, now: float) -> None:
        dt = now - st.t0
        produced = self.ring.counter() - st.counter0
        log.info("pushed %d frames (%.1f fps, %.2f Mbit/s%s), last %s q%d, %d of %d encoded "
                 "frames skipped to keep latency low", self.sent, st.n / dt,
                 st.bytes * 8e-6 / dt, self._link(), st.res, st.quality,
                 max(produced - st.n, 0), produced)
        st.reset(now, self.ring.counter())
