"""The recorded drive in tests/data/route.nmea, decoded independently of the code under test,
and the check that what a GPS path delivered is a gap-free, in-order run of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROUTE = Path(__file__).resolve().parent / "data" / "route.nmea"
CYCLE = 0.05  # gpsfake delay per sentence: 4 sentences per epoch -> 0.2 s per fix


def nmea_checksum_ok(line: str) -> bool:
    """True if the sentence's *XX checksum is the XOR of the bytes between $ and *."""
    body, _, given = line[1:].partition("*")
    calc = 0
    for ch in body:
        calc ^= ord(ch)
    return line.startswith("$") and len(given) == 2 and int(given, 16) == calc


def dm_to_deg(value: str, hemi: str, deg_digits: int) -> float:
    """NMEA ddmm.mmmm / dddmm.mmmm to signed decimal degrees."""
    deg = int(value[:deg_digits]) + float(value[deg_digits:]) / 60.0
    return -deg if hemi in ("S", "W") else deg


def load_route() -> list[dict[str, Any]]:
    """The route file's epochs, decoded by hand (independently of pynmea2)."""
    epochs: dict[str, dict[str, Any]] = {}
    for line in ROUTE.read_text().splitlines():
        f = line.split("*")[0].split(",")
        if f[0].endswith("GGA"):
            e = epochs.setdefault(f[1], {})
            e.update(lat=dm_to_deg(f[2], f[3], 2), lon=dm_to_deg(f[4], f[5], 3),
                     alt=float(f[9]), quality=int(f[6]))
        elif f[0].endswith("RMC"):
            e = epochs.setdefault(f[1], {})
            hms, dmy = f[1], f[9]
            e.update(time=f"20{dmy[4:6]}-{dmy[2:4]}-{dmy[0:2]}T{hms[0:2]}:{hms[2:4]}:"
                     f"{hms[4:6]}.{hms[7:9] or '00'}0Z",
                     knots=float(f[7]), track=float(f[8]), status=f[2],
                     rlat=dm_to_deg(f[3], f[4], 2), rlon=dm_to_deg(f[5], f[6], 3))
    return list(epochs.values())


def assert_matches_route(payloads: list[dict[str, Any]], route: list[dict[str, Any]],
                         min_len: int, partial_first: bool = False) -> None:
    """Payloads are a contiguous run of the route ending at its last fix, values matching.

    gpsd's first report after it starts reading may lack the altitude (partial epoch):
    `partial_first` excuses the altitude and 3D mode of that one fix.
    """
    times = [p["time"] for p in payloads]
    assert len(times) == len(set(times)), f"duplicate fixes: {times}"
    route_times = [e["time"] for e in route]
    assert times, "nothing was posted"
    start = route_times.index(times[0])
    assert times == route_times[start:], "posted fixes are not the route's, in order, gap-free"
    assert len(times) >= min_len
    for i, (p, e) in enumerate(zip(payloads, route[start:], strict=True)):
        assert abs(p["lat"] - e["lat"]) < 1e-6 and abs(p["lon"] - e["lon"]) < 1e-6, (p, e)
        assert p["speed"] == pytest.approx(e["knots"] * 0.514444, abs=0.01)
        assert p["track"] == pytest.approx(e["track"], abs=0.01)
        if i == 0 and partial_first:
            assert p["mode"] in (2, 3)
        else:
            assert p["mode"] == 3 and p["alt"] == pytest.approx(e["alt"], abs=1e-3), (p, e)
