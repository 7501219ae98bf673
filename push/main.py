"""The push child's entry: the configured stream to one listener, retrying while it is down."""

from __future__ import annotations

from pipeline.child import Child
from pipeline.shm import FrameRing
from push.h264 import H264Pusher
from push.mjpeg import MjpegPusher
from push.options import PushOptions


def push_main(child: Child, opts: PushOptions) -> None:
    """The push child: H.264 access units (`--format h264`) or the newest JPEGs."""
    handles = child.handles
    if opts.fmt == "h264":
        ring = FrameRing.attach(handles.h264)
        depth = FrameRing.attach(handles.depth_video) if opts.depth else None
        H264Pusher(opts, ring, child.control, handles.h264_wake_r, child.stop,
                   beat=child.beat, depth=depth,
                   depth_wake_r=handles.depth_video_wake_r if opts.depth else None).run()
        return
    ring = FrameRing.attach(handles.jpeg[opts.stream])
    MjpegPusher(opts, ring, child.control, handles.jpeg_wake_r, child.stop,
                beat=child.beat).run()

