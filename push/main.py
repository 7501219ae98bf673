"""The push child's entry: the configured stream to one listener, retrying while it is down."""

from __future__ import annotations

from pipeline.child import Child
from pipeline.shm import FrameRing
from push.h264 import H264Pusher
from push.mjpeg import MjpegPusher
from push.options import GpsOptions, PushOptions


def push_main(child: Child, opts: PushOptions) -> None:
    """The push child: H.264 access units (`--format h264`) or the newest JPEGs."""
    handles = child.handles
    if opts.fmt == "h264":
        ring = FrameRing.attach(handles.h264)
        H264Pusher(opts, ring, child.control, handles.h264_wake_r, child.stop,
                   beat=child.beat).run()
        return
    ring = FrameRing.attach(handles.jpeg[opts.stream])
    MjpegPusher(opts, ring, child.control, handles.jpeg_wake_r, child.stop,
                beat=child.beat).run()


def gps_main(child: Child, gps: GpsOptions) -> None:
    """The GPS child: read fixes and POST them to the -g URL."""
    from push.gps import GpsPoster, parse_gps_spec  # noqa: PLC0415

    reader = parse_gps_spec(gps.spec)
    if reader is None:
        return
    verify: bool | str = False if gps.insecure else (gps.ca_file or True)
    poster = GpsPoster(gps.url, reader, interval=gps.interval, verify=verify)
    reader.start()
    poster.start()
    try:
        while not child.stop.wait(1.0):
            pass
    finally:
        poster.stop()
        reader.stop()
