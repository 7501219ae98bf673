"""The MCAP recorder child: every frame to the file, finalized on every exit path.

It runs the `Publisher` (robotics/publisher.py) on a foxglove-sdk MCAP writer, which
counts as a sink on every channel; `robotics/mcap_files.py` owns the files (flush, split,
keep, a full disk). The file is closed in a `finally`, so Ctrl-C, SIGTERM, a crashed
encoder or a fatal exit of another child all leave a readable file. When the disk fills
up the recording ends but the child stays, idle, so the supervisor does not restart it
into the same full disk.
"""

from __future__ import annotations

import logging

import foxglove

from pipeline.child import Child, Handles
from pipeline.shm import FrameRing
from robotics.mcap_files import McapSeries
from robotics.options import RoboticsOptions
from robotics.publisher import Camera, gps_reader, publishers, serve

log = logging.getLogger("robotics")


def mcap_main(child: Child, opts: RoboticsOptions, first: str = "camera",
              more: tuple[Camera, ...] = (), spares: tuple[Handles, ...] = ()) -> None:
    """The MCAP recorder child: every frame of every camera (`first`: the first camera's
    name, `more`: the others, `spares`: slots of cameras plugged in later) to the file,
    finalized on every exit path."""
    handles, control = child.handles, child.control
    ctx = foxglove.Context()
    files = McapSeries(opts, ctx, control)
    log.info("recording MCAP to %s (%s messages, %s chunks%s)", files.path,
             opts.record_mcap_profile, opts.record_mcap_compression,
             ", split" if opts.split else "")
    gps = None
    pub = None
    try:
        gps = gps_reader(opts.gps)
        pub = publishers(child, ctx, first, more, depth=opts.record_mcap_depth, gps=gps,
                         flavour=opts.record_mcap_profile, spares=spares)
        if opts.record_mcap_video == "h264":
            rings = [handles.h264, *(h.h264 for _, _, h in more)]
            for one, ring in zip(pub.pubs, rings, strict=True):
                if ring:
                    one.add_video(FrameRing.attach(ring))

        def flush() -> None:
            # The source ended or was lost: put every frame so far on disk in whole
            # chunks, so even a later SIGKILL leaves them readable.
            assert pub is not None
            pub.settle()
            if files.flush():
                log.info("source lost: MCAP chunks flushed (%s)", pub.summary())

        pub.set_on_signal_lost(flush)
        if not serve(pub, child, lambda: files.tick(pub)):
            pub.close()
            log.info("MCAP recording over (%s); idle until the server stops", pub.summary())
            while not child.stop.is_set():
                child.beat()
                child.stop.wait(0.5)
    finally:
        if pub is not None:
            pub.close()
        if gps is not None:
            gps.stop()
        if files.close(pub):
            log.info("MCAP finalized: %s (%s)", files.path, pub.summary() if pub else "nothing")
