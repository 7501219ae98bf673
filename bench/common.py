"""Pieces several benchmark scripts share: waiting for a server, counting a client's messages."""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from typing import Any


def status(port: int) -> dict:
    """The server's /status document."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=3) as r:
        return json.loads(r.read())


def wait_started(port: int, srv: subprocess.Popen, timeout: float = 30.0) -> dict:
    """Wait until the server on `port` has captured a frame; its /status then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = status(port)
            if st["frames_captured"] > 0:
                return st
        except OSError:
            pass
        if time.monotonic() > deadline or srv.poll() is not None:
            raise RuntimeError("server did not start")
        time.sleep(0.2)


def count_messages(client: Any, topics: Iterable[str], seconds: float
                   ) -> tuple[dict[str, int], float]:
    """Messages per topic a Foxglove client receives over `seconds`, and the time taken."""
    counts = dict.fromkeys(topics, 0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        item = client.next_message(5)
        if item is None:
            raise RuntimeError("no message for 5 s")
        counts[item[0]] += 1
    return counts, time.monotonic() - t0


class BodySkipper:
    """A multipart reader's count of body bytes it passes over without copying them."""

    skip = 0

    def skipped(self, view: memoryview) -> memoryview:
        """`view` past the bytes still to skip."""
        n = min(self.skip, len(view))
        self.skip -= n
        return view[n:]


def bench_args(doc: str, **defaults: float | bool) -> argparse.Namespace:
    """A bench script's command line: one --NAME per keyword, typed by its default
    (a bool default is a flag), described by the script's first docstring line."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            ap.add_argument(flag, action="store_true")
        else:
            ap.add_argument(flag, type=type(default), default=default)
    return ap.parse_args()


def synthetic_depth(width: int, height: int, n: int) -> list[Any]:
    """`n` depth frames (uint16 arrays) of the synthetic scene, read at 30 fps so that its
    objects move between them as they do live."""
    from camera.synthetic import SyntheticSource  # noqa: PLC0415  (numpy only when used)

    src = SyntheticSource(width, height, 30.0)
    src.open()
    try:
        out = []
        for _ in range(n):
            frame = src.read(1.0)
            assert frame is not None and frame.depth is not None
            out.append(frame.depth.copy())
            time.sleep(1 / 30)  # the objects move with the clock
        return out
    finally:
        src.close()
