"""/depth-video end to end: a librealsense recording of known depth served as 10-bit
H.264, probed and decoded by ffprobe and ffmpeg, and turned into metres with nothing but
the response's headers.

The server runs with --no-align on a recording whose color and depth share intrinsics,
so the served depth is the recording's: a plane at 1.5 m, a box at 0.8 m and a strip
without depth (tests/camera/rs_recording.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browser import Browser
from tests.camera.rs_recording import (
    BOX_MM,
    PLANE_MM,
    make_recording,
    scene_depth,
    scene_regions,
)
from tests.helpers import MjpegReader, Server, running

W, H = 640, 480
TOKEN = "video-s3cret"
ROUTE = f"/depth-video?token={TOKEN}"
GOP = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("scene") / "scene.db3"
    rec = make_recording(path, W, H, 30, frames=30, depth_fn=lambda _n: scene_depth(W, H),
                         baseline=0.0)
    with running("--source", rec["path"], "--width", str(W), "--height", str(H),
                 "--no-align", "--depth-max", "10", "--token", TOKEN,
                 "--h264-gop", str(GOP)) as srv:
        yield srv


def read_parts(srv: Server, n: int) -> tuple[dict[str, str], list[tuple[dict[str, str], bytes]]]:
    r = MjpegReader(srv.port, ROUTE, timeout=20)
    try:
        assert r.status == 200
        return r.headers, [r.next_part() for _ in range(n)]
    finally:
        r.close()


def status(srv: Server) -> dict:
    code, _, body = srv.get(f"/status?token={TOKEN}")
    assert code == 200, code
    return json.loads(body)


def metres(codes: np.ndarray, headers: dict[str, str]) -> np.ndarray:
    """The documented mapping, from the response's headers alone."""
    dmin, dmax = float(headers["x-depth-min"]), float(headers["x-depth-max"])
    lo, hi = int(headers["x-depth-code-lo"]), int(headers["x-depth-code-hi"])
    d = dmin * np.exp((codes.astype(np.float64) - lo) * math.log(dmax / dmin) / (hi - lo))
    d = np.clip(d, dmin, dmax)
    d[codes < int(headers["x-depth-invalid-below"])] = 0.0
    return d


def test_the_stream_decodes_with_ffmpeg_to_the_recordings_metres(
        server: Server, tmp_path: Path) -> None:
    headers, parts = read_parts(server, 20)
    assert headers["x-depth-codec"] == "avc1.6e001f"  # High 10 (0x6e), level 3.1
    assert headers["x-depth-coding"] == "log10"
    assert parts[0][0]["x-keyframe"] == "1"
    frames = [int(h["x-frame"]) for h, _ in parts]
    assert frames == sorted(set(frames)), frames  # in order, none twice
    assert all(h["content-type"] == "video/h264" for h, _ in parts)
    path = tmp_path / "depth.h264"
    path.write_bytes(b"".join(body for _, body in parts))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["profile"], stream["pix_fmt"]) == ("High 10", "yuv420p10le")
    assert (stream["width"], stream["height"]) == (W, H)
    assert int(stream["nb_read_frames"]) == len(parts)
    # The decoded planes as they are (a conversion to grey would rescale the luma range).
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p10le",
         "-"], capture_output=True, timeout=60, check=True).stdout
    codes = np.frombuffer(raw, "<u2").reshape(-1, H * 3 // 2, W)[:, :H]
    assert len(codes) == len(parts)
    truth = scene_depth(W, H) / 1000.0
    valid = truth > 0
    x0, y0, x1, y1 = scene_regions(W, H)["invalid"]
    for frame in codes:
        got = metres(frame, headers)
        assert (np.abs(got[valid] - truth[valid]) <= 0.01 * truth[valid]).mean() >= 0.99
        assert (got[y0 + 2:y1 - 2, x0 + 2:x1 - 2] == 0).all()  # no depth stays no depth


def test_a_client_joining_gets_a_keyframe_at_once_shared_with_the_others(
        server: Server) -> None:
    first = MjpegReader(server.port, ROUTE, timeout=20)
    try:
        seen = [first.next_part()[0] for _ in range(10)]
        second = MjpegReader(server.port, ROUTE, timeout=20)
        try:
            head = second.next_part()[0]
        finally:
            second.close()
        assert head["x-keyframe"] == "1"
        joined_at = int(head["x-frame"])
        while int(seen[-1]["x-frame"]) < joined_at:
            seen.append(first.next_part()[0])
    finally:
        first.close()
    # The first client got that very unit (one encode for both), and it came before the
    # keyframe interval would have brought one: it was made for the client that joined.
    at = next(i for i, h in enumerate(seen) if int(h["x-frame"]) == joined_at)
    assert seen[at]["x-keyframe"] == "1"
    last_key = max(i for i, h in enumerate(seen[:at]) if h["x-keyframe"] == "1")
    assert at - last_key < GOP, (at, last_key)


def test_it_encodes_only_while_watched(server: Server) -> None:
    deadline = time.monotonic() + 20
    while status(server)["depth_video"]["viewers"]:  # earlier clients' sockets closing
        assert time.monotonic() < deadline, status(server)["depth_video"]
        time.sleep(0.1)
    st = status(server)
    idle_from, captured = st["depth_video"]["frames"], st["frames_captured"]
    while status(server)["frames_captured"] < captured + 30:  # a second of capture
        assert time.monotonic() < deadline + 20
        time.sleep(0.1)
    # a unit already being encoded as the last client left may still land
    assert status(server)["depth_video"]["frames"] <= idle_from + 1
    _, parts = read_parts(server, 5)
    st = status(server)["depth_video"]
    assert st["frames"] >= idle_from + 5 and st["keyframes"] >= 1
    assert st["codec"] == "avc1.6e001f"


def test_camera_json_says_how_to_read_it(server: Server) -> None:
    code, _, body = server.get(f"/camera.json?token={TOKEN}")
    assert code == 200
    video = json.loads(body)["depth_video"]
    assert video == {"route": "/depth-video", "format": "video/h264", "codec": "avc1.6e001f",
                     "units": "m", "coding": "log10", "min": 0.3, "max": 10.0,
                     "code_lo": 64, "code_hi": 1023, "invalid_below": 32}
    assert server.get("/depth-video")[0] == 401  # the token guards it as every route


def test_no_depth_video_runs_no_stage_and_has_no_route() -> None:
    with running("--width", "320", "--height", "240", "--no-depth-video") as srv:
        st = srv.status()
        assert st["depth_video"] is None
        assert srv.get("/depth-video")[0] == 404
        assert json.loads(srv.get("/camera.json")[2])["depth_video"] is None
        assert "depthvideo" not in srv.log()


def test_the_python_client_reads_metres_from_the_video(server: Server) -> None:
    from depthclient import DepthClient  # noqa: PLC0415

    truth = scene_depth(W, H) / 1000.0
    valid = truth > 0
    with DepthClient(server.base, token=TOKEN) as cam:
        frames = list(cam.frames(max_frames=5, source="video"))
    assert len(frames) == 5
    for color, depth_m, ts in frames:
        assert color.shape == (H, W, 3) and depth_m.shape == (H, W) and ts > 0
        assert depth_m.dtype == np.float32
        assert (np.abs(depth_m[valid] - truth[valid]) <= 0.01 * truth[valid]).mean() >= 0.99
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)


# ---- the page ------------------------------------------------------------------------

# The share of valid pixels of the page's newest depth frame within 1 % of the scene's
# truth (plane, box, strip without depth), computed in the page from depthImage().
PAGE_ACCURACY = """(() => {
  const img = window.depthcam.depthImage(), r = %s;
  let valid = 0, close = 0, holes = 0, holesKept = 0;
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) {
    const inside = (b, m) => x >= b[0] + m && x < b[2] - m && y >= b[1] + m && y < b[3] - m;
    const got = img.metres[y * img.width + x];
    if (inside(r.invalid, 0)) {
      if (inside(r.invalid, 2)) { holes++; holesKept += got === 0; }
      continue;
    }
    const truth = inside(r.box, 0) ? %f : %f;
    valid++;
    close += Math.abs(got - truth) <= 0.01 * truth;
  }
  return {share: close / valid, holes, holesKept, width: img.width};
})()"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


def page_accuracy(b: Browser) -> dict:
    regions = {k: list(v) for k, v in scene_regions(W, H).items()}
    return b.eval(PAGE_ACCURACY % (json.dumps(regions), BOX_MM / 1000, PLANE_MM / 1000))


def open_page(b: Browser, srv: Server, query: str = "") -> None:
    b.goto(f"{srv.base}/?token={TOKEN}{query}")
    b.wait_for("window.depthcam && window.depthcam.depthReady === true", timeout=30)
    assert b.eval("window.depthcam.metricReady(20000)", timeout=30) is True


def test_the_page_measures_from_the_video_at_a_fraction_of_the_metric_bytes(
        browser: Browser, server: Server) -> None:
    open_page(browser, server)
    assert browser.eval("window.depthcam.depthSource()") == "video"
    x0, y0, x1, y1 = scene_regions(W, H)["box"]
    box = browser.eval(f"window.depthcam.depthAt({(x0 + x1) // 2}, {(y0 + y1) // 2})")
    assert box == pytest.approx(0.8, rel=0.01)
    assert browser.eval("window.depthcam.depthAt(20, 20)") == pytest.approx(1.5, rel=0.01)
    got = page_accuracy(browser)
    assert got["width"] == W and got["share"] >= 0.99, got
    assert got["holesKept"] == got["holes"] > 0, got
    # Stats over the window the page keeps: frames decode at the rate they arrive.
    deadline = time.monotonic() + 20
    while (video := browser.eval("window.depthcam.depthStats()"))["fps"] <= 0:
        assert time.monotonic() < deadline, video
        time.sleep(0.2)
    assert video["bytes_per_s"] > 0 and video["decode_ms"] is not None
    assert not browser.eval("window.depthcam.metric")  # /metric stays closed
    # The same page on /metric, for the bytes the video saves on this scene.
    open_page(browser, server, "&depth=metric")
    assert browser.eval("window.depthcam.depthSource()") == "metric"
    while (metric := browser.eval("window.depthcam.depthStats()"))["fps"] <= 0:
        assert time.monotonic() < deadline + 20, metric
        time.sleep(0.2)
    assert video["bytes_per_s"] * 20 <= metric["bytes_per_s"], (video, metric)


def test_without_webcodecs_the_page_measures_from_metric(server: Server) -> None:
    with Browser() as b:
        b.call("Page.enable")
        b.call("Page.addScriptToEvaluateOnNewDocument",
               source="delete window.VideoDecoder; delete window.VideoFrame;")
        open_page(b, server)
        assert b.eval("typeof VideoDecoder") == "undefined"
        assert b.eval("window.depthcam.depthSource()") == "metric"
        assert b.eval("window.depthcam.depthAt(20, 20)") == pytest.approx(1.5, rel=0.01)
        assert page_accuracy(b)["share"] >= 0.95
        assert not b.eval("window.depthcam.video")


def test_a_bad_depth_choice_is_a_400(server: Server) -> None:
    code, _, body = server.get(f"/?token={TOKEN}&depth=jpeg")
    assert code == 400 and "video or metric" in json.loads(body)["detail"]


def wait_status(srv: Server, check: Callable[[dict], bool], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while not check(st := status(srv)):
        assert time.monotonic() < deadline, st
        time.sleep(0.1)
    return st


def test_the_page_opens_the_video_only_while_it_measures(browser: Browser,
                                                         server: Server) -> None:
    browser.goto(f"{server.base}/?token={TOKEN}")
    browser.wait_for("window.depthcam && window.depthcam.depthReady === true", timeout=30)
    # (earlier pages' streams close as the server next writes to them)
    wait_status(server, lambda st: st["depth_video"]["viewers"] == 0
                and st["streams"]["metric"]["viewers"] == 0)
    browser.eval("window.depthcam.metricIdleMs = 1000")
    assert browser.eval("window.depthcam.metricReady(20000)", timeout=30) is True
    st = wait_status(server, lambda st: st["depth_video"]["viewers"] == 1)
    assert st["streams"]["metric"]["viewers"] == 0
    # The script's calls stop: the stream closes a second later and the stage idles.
    wait_status(server, lambda st: st["depth_video"]["viewers"] == 0)
    assert browser.eval("window.depthcam.metricNeeds()") == []
