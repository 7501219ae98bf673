"""Chromium paints each MJPEG frame when it arrives, not one frame later.

Chromium shows a multipart part only once it has parsed the next part's headers
(crbug.com/527446). At 5 fps that is 200 ms of extra latency unless the server sends
the next headers right after each JPEG, which it does for Chromium (advance headers).
The capture time drawn into each synthetic frame (media/stamp.py) is read back from
the painted <img> on every animation frame.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import ROOT, Server, running

sys.path.insert(0, str(ROOT))
from bench.bench_paint import paint_latencies  # noqa: E402

FPS = 5


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    with running("--width", "640", "--height", "480", "--fps", str(FPS)) as s:
        yield s


def test_chromium_paints_each_frame_on_arrival(srv: Server) -> None:
    lat = paint_latencies(srv.base, 3.0)  # the page's own <img>, Chromium's User-Agent
    assert len(lat) >= 8, lat
    assert statistics.median(lat) < 0.5 / FPS, lat


def test_without_advance_headers_chromium_lags_one_frame(srv: Server) -> None:
    # the effect the advance headers remove, measured by the same means
    lat = paint_latencies(srv.base, 3.0, "color?advance_headers=0")
    assert len(lat) >= 8, lat
    assert statistics.median(lat) > 0.75 / FPS, lat


def test_advance_headers_query_is_checked(srv: Server) -> None:
    code, _, body = srv.get("/color?advance_headers=yes")
    assert code == 400 and b"advance_headers" in body


def test_a_script_reading_the_stream_still_gets_content_length(srv: Server) -> None:
    from tests.browser import Browser  # noqa: PLC0415

    with Browser() as b:
        b.goto(srv.base + "/")
        head = b.eval("""(async () => {
          const ctl = new AbortController();
          const r = await fetch("color", {signal: ctl.signal});
          const reader = r.body.getReader();
          let text = "";
          while (!text.includes("\\r\\n\\r\\n", text.indexOf("--frame"))) {
            const {value} = await reader.read();
            text += new TextDecoder("latin1").decode(value);
          }
          ctl.abort();
          return text.slice(0, 400);
        })()""")
    assert head.startswith("--frame\r\n") and "Content-Length: " in head, head


def test_ffmpeg_reads_the_advance_headers_form_too(srv: Server) -> None:
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from tests.conftest import require  # noqa: PLC0415

    out = subprocess.run(
        [require("ffprobe"), "-v", "error", "-f", "mpjpeg", "-read_intervals", "%+#3",
         "-count_frames", "-show_entries", "stream=width,height,nb_read_frames", "-of",
         "json", srv.base + "/color?advance_headers=1"],
        capture_output=True, text=True, timeout=30, check=True)
    st = json.loads(out.stdout)["streams"][0]
    assert (st["width"], st["height"], st["nb_read_frames"]) == (640, 480, "3")
