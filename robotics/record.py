"""The MCAP recorder child: every frame to the file, finalized on every exit path.

It runs the `Publisher` (robotics/publisher.py) on a foxglove-sdk MCAP writer, which
counts as a sink on every channel. The file is closed in a `finally`, so Ctrl-C,
SIGTERM, a crashed encoder or a fatal exit of another child all leave a readable file.
"""

from __future__ import annotations

import json
import logging

from pipeline.child import CannotStart, Child
from pipeline.shm import FrameRing
from robotics.flavours import FLAVOURS
from robotics.options import RoboticsOptions
from robotics.publisher import Publisher, attach_rings, gps_reader, reason, serve
from sinks.tap import unused_path

log = logging.getLogger("robotics")

MCAP_CHUNK_BYTES = 4 << 20


def mcap_main(child: Child, opts: RoboticsOptions) -> None:
    """The MCAP recorder child: every frame to the file, finalized on every exit path."""
    import foxglove  # noqa: PLC0415
    from foxglove.mcap import MCAPCompression, MCAPWriteOptions  # noqa: PLC0415

    handles, control = child.handles, child.control
    raw, color = attach_rings(child)
    assert opts.record_mcap is not None
    path = unused_path(opts.record_mcap) if control["restarts_mcap"] else opts.record_mcap
    compression = {"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4,
                   "none": None}[opts.record_mcap_compression]
    ctx = foxglove.Context()
    try:
        writer = foxglove.open_mcap(
            path, allow_overwrite=True, context=ctx,
            writer_options=MCAPWriteOptions(compression=compression,
                                            profile=FLAVOURS[opts.record_mcap_profile].profile
                                            or None,
                                            chunk_size=MCAP_CHUNK_BYTES,
                                            compression_threads=0))
    except (RuntimeError, OSError) as exc:
        raise CannotStart(f"--record-mcap {path}: {reason(exc)}") from None
    log.info("recording MCAP to %s (%s messages, %s chunks)", path,
             opts.record_mcap_profile, opts.record_mcap_compression)
    gps = None
    pub = None
    try:
        gps = gps_reader(opts.gps)
        pub = Publisher("mcap", ctx, control, raw, color,
                        depth=opts.record_mcap_depth == "raw", gps=gps,
                        flavour=opts.record_mcap_profile)
        if opts.record_mcap_video == "h264" and handles.h264:
            pub.add_video(FrameRing.attach(handles.h264))

        def flush() -> None:
            # The source ended or was lost: put every frame so far on disk in whole
            # chunks, so even a later SIGKILL leaves them readable.
            writer.flush()
            log.info("source lost: MCAP chunks flushed (%s)", pub.summary())

        pub.on_signal_lost = flush
        serve(pub, child)
    finally:
        if pub is not None:
            pub.close()
            model = pub.model
            if model is not None:
                writer.write_metadata("camera", {"model": json.dumps(model)})
        if gps is not None:
            gps.stop()
        writer.close()
        log.info("MCAP finalized: %s (%s)", path, pub.summary() if pub else "nothing")
