"""The GPS child's entry: read fixes from the --gps source and POST them to the -g URL."""

from __future__ import annotations

from pipeline.child import Child
from push.gps.poster import GpsPoster
from push.gps.spec import parse_gps_spec
from push.options import GpsOptions


def gps_main(child: Child, gps: GpsOptions) -> None:
    """The GPS child: read fixes and POST them to the -g URL."""
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
