"""The page's core in a real headless Chromium: script API, status, and the capture stamp."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser import Browser
from tests.helpers import Server, running


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running("--width", "640", "--height", "480", "--fps", "30",
                 "--token", "page-s3cret") as srv:
        yield srv


def test_page_api_status_and_stamp(server: Server) -> None:
    with Browser() as b:
        b.goto(server.base + "/?token=page-s3cret")
        assert b.wait_for("window.depthcam && window.depthcam.ready")
        assert b.wait_for("window.depthcam.status && window.depthcam.status.frames_captured > 0")
        # The synthetic frame's stamp, read from the <img> in the page, is a capture time a
        # little before now: the same clock the server stamps X-Timestamp with.
        stamp = b.wait_for("window.depthcam.stampOf('color')")
        assert 0 <= time.time() - stamp < 5.0
        first = stamp
        later = b.wait_for(f"(() => {{ const t = window.depthcam.stampOf('color');"
                           f" return t > {first} ? t : null; }})()")
        assert later > first, "the <img> is not showing new frames"
        # The depth image carries no stamp: the reader says so instead of inventing one.
        assert b.eval("window.depthcam.stampOf('depth')") is None
