"""Depth for machines, end to end: a librealsense recording of known depth served by
app_mp.py, read back as the metric stream, /depth.png and /camera.json.

The recording holds vertical bands of constant depth from 0.4 to 9.5 m over a strip of
invalid pixels; the server runs with --no-align so the served depth is the recording's
depth bit for bit (its color and depth intrinsics are the same).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from media.hue import HUE_MODES, decode_hue_depth
from tests.browser import Browser
from tests.camera.rs_recording import FOCAL, make_recording
from tests.conftest import require
from tests.helpers import PYTHON, ROOT, MjpegReader, Server, free_port, running

W, H = 640, 480
TOKEN = "depth-s3cret"
BANDS_MM = np.round(np.geomspace(400, 9500, 12)).astype(np.uint16)
EDGES = np.linspace(0, W, len(BANDS_MM) + 1).astype(int)
INVALID_ROWS = 40  # the bottom rows carry no depth
MARGIN = 4  # pixels kept away from band edges (JPEG ringing)


def band_depth(_n: int = 0) -> np.ndarray:
    """The recording's depth image (z16, mm)."""
    depth = np.zeros((H, W), np.uint16)
    for i, mm in enumerate(BANDS_MM):
        depth[: H - INVALID_ROWS, EDGES[i] : EDGES[i + 1]] = mm
    return depth


def inside_bands(n: int, seed: int = 1) -> np.ndarray:
    """n random (x, y) pixels at least MARGIN pixels inside a band."""
    rng = np.random.default_rng(seed)
    band = rng.integers(0, len(BANDS_MM), n)
    x = rng.integers(EDGES[band] + MARGIN, EDGES[band + 1] - MARGIN)
    y = rng.integers(MARGIN, H - INVALID_ROWS - MARGIN, n)
    return np.stack([x, y], axis=1)


def point(x: float, y: float) -> np.ndarray:
    """The true 3D point (metres) at pixel (x, y) of the recording."""
    z = band_depth()[int(y), int(x)] / 1000.0
    return np.array([(x - W / 2) / FOCAL * z, (y - H / 2) / FOCAL * z, z])


HOLE_COLUMN = 112  # a whole column without depth, as alignment leaves them
HOLE_STEP = 16  # single holes at (8 + 16 i, 8 + 16 j)


def holed_depth(_n: int = 0) -> np.ndarray:
    """The bands with alignment holes: column HOLE_COLUMN and scattered single pixels.

    JPEG ringing around a hole spoils the depth coded in the hole's own 8x8 block, which
    is the coding's limit, not the lookup's; so the holes sit on block corners (and the
    column on a block edge), where the nearest neighbour the lookup takes first (above,
    else left) lies in a block without holes."""
    depth = band_depth()
    depth[:, HOLE_COLUMN] = 0
    depth[HOLE_STEP // 2 : H - INVALID_ROWS : HOLE_STEP, HOLE_STEP // 2 :: HOLE_STEP] = 0
    return depth


def holed_point(x: float, y: float) -> np.ndarray:
    """The true 3D point (metres) at pixel (x, y) of the holed recording."""
    z = holed_depth()[int(y), int(x)] / 1000.0
    assert z > 0, (x, y)
    return np.array([(x - W / 2) / FOCAL * z, (y - H / 2) / FOCAL * z, z])


def make_band_recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The known-depth recording (bands.db3, W x H at 30 fps) in a new folder."""
    path = tmp_path_factory.mktemp("bands") / "bands.db3"
    return make_recording(path, W, H, 30, frames=30, depth_fn=band_depth, baseline=0.0)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_band_recording(tmp_path_factory)


@pytest.fixture(scope="module")
def server(recording: dict) -> Iterator[Server]:
    with running("--source", recording["path"], "--width", str(W), "--height", str(H),
                 "--no-align", "--depth-max", "10", "--token", TOKEN) as srv:
        yield srv


def test_metric_stream_carries_decodable_depth(server: Server) -> None:
    r = MjpegReader(server.port, f"/metric?token={TOKEN}")
    try:
        parts = [r.next_part() for _ in range(3)]
    finally:
        r.close()
    headers, jpeg = parts[-1]
    for h, _ in parts:
        assert (h["x-depth-mode"], h["x-depth-min"], h["x-depth-max"], h["x-depth-units"]) == (
            "hue-log", "0.3", "10", "m")
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (H, W, 3)
    got = decode_hue_depth(jpeg, float(headers["x-depth-min"]), float(headers["x-depth-max"]),
                           mapping=HUE_MODES[headers["x-depth-mode"]]).astype(float)
    truth = band_depth().astype(float)
    valid = truth > 0
    close = np.abs(got[valid] - truth[valid]) <= 0.01 * truth[valid]
    assert close.mean() >= 0.95, close.mean()
    assert (got[~valid] == 0).mean() > 0.99
    # The people's /depth stays as drawn for eyes, with its own headers.
    code, hdrs, _ = server.get(f"/depth.jpg?token={TOKEN}")
    assert code == 200 and hdrs["x-depth-mode"] == "colormap"
    code, hdrs, body = server.get(f"/metric.jpg?token={TOKEN}")
    assert code == 200 and hdrs["x-depth-mode"] == "hue-log" and body[:2] == b"\xff\xd8"


def test_depth_png_is_the_recordings_depth_exactly(server: Server) -> None:
    code, headers, body = server.get(f"/depth.png?token={TOKEN}")
    assert code == 200 and headers["content-type"] == "image/png"
    depth = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (H, W)
    assert np.array_equal(depth, band_depth())
    assert float(headers["x-depth-scale"]) == pytest.approx(0.001)
    assert float(headers["x-timestamp"]) > 0


def test_camera_json_has_the_recordings_intrinsics_and_the_metric_coding(server: Server) -> None:
    code, _, body = server.get(f"/camera.json?token={TOKEN}")
    assert code == 200
    cam = json.loads(body)
    intr = cam["intrinsics"]
    assert (intr["width"], intr["height"]) == (W, H)
    assert (intr["fx"], intr["fy"], intr["ppx"], intr["ppy"]) == pytest.approx(
        (FOCAL, FOCAL, W / 2, H / 2))
    assert cam["depth_scale"] == pytest.approx(0.001)
    assert cam["metric"] == {**cam["metric"], "route": "/metric", "mode": "hue-log",
                             "mapping": "log", "min": 0.3, "max": 10.0, "units": "m"}
    assert cam["metric"]["quality"] >= 90 and cam["metric"]["subsampling"] == "444"
    # Credentials are needed like everywhere else.
    assert server.get("/camera.json")[0] == 401
    assert server.get("/depth.png")[0] == 401


def test_bad_requests_get_json_errors(server: Server) -> None:
    for path, want in ((f"/?view=4d&token={TOKEN}", 404), (f"/nosuch?token={TOKEN}", 404),
                       (f"/depth.png?token={TOKEN}&x=1", 400),
                       (f"/camera.json?token={TOKEN}&frame=2", 400)):
        code, headers, body = server.get(path)
        assert code == want, path
        assert headers["content-type"] == "application/json" and json.loads(body)["detail"]


# ---- the page, in headless Chromium with WebGL2 (SwiftShader) ---------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(webgl=True, width=1280, height=800) as b:
        yield b


def open_page(browser: Browser, server: Server, view: str = "2d", depth: str = "") -> None:
    """The page, its tools reading depth from `depth` ("metric", "video"; default: the
    video where the browser decodes it)."""
    browser.goto(f"{server.base}/?view={view}&token={TOKEN}" + (f"&depth={depth}" if depth else ""))
    browser.wait_for("window.depthcam && window.depthcam.depthReady"
                     " && window.depthcam.depthAt(20, 20) !== null", timeout=20)


def hover(browser: Browser, element_id: str, x: float, y: float) -> None:
    """A mouse move over color pixel (x, y) of the element with that id."""
    browser.eval(f"""(() => {{
        const el = document.getElementById('{element_id}'), r = el.getBoundingClientRect();
        el.dispatchEvent(new MouseEvent('mousemove', {{bubbles: true,
            clientX: r.left + ({x} + 0.5) * r.width / {W},
            clientY: r.top + ({y} + 0.5) * r.height / {H}}}));
    }})()""")


def viewers(server: Server) -> dict[str, int]:
    """Connected clients of each stream, from /status."""
    code, _, body = server.get(f"/status?token={TOKEN}", timeout=3)
    assert code == 200, body
    return {name: s["viewers"] for name, s in json.loads(body)["streams"].items()}


def wait_viewers(server: Server, timeout: float = 10.0, **want: int) -> dict[str, int]:
    """Wait until the server counts `want` viewers on each named stream."""
    deadline = time.monotonic() + timeout
    while True:
        now = viewers(server)
        if all(now[k] == v for k, v in want.items()):
            return now
        assert time.monotonic() < deadline, (now, want)
        time.sleep(0.1)


def test_depth_at_reads_metres_in_the_browser(browser: Browser, server: Server) -> None:
    open_page(browser, server)
    pts = inside_bands(300)
    got = browser.eval(f"{pts.tolist()}.map(([x, y]) => window.depthcam.depthAt(x, y))")
    truth = np.array([band_depth()[y, x] / 1000.0 for x, y in pts])
    ok = np.array([g is not None and abs(g - t) <= 0.01 * t
                   for g, t in zip(got, truth, strict=True)])
    bad = [(g, t) for g, t, o in zip(got, truth, ok, strict=True) if not o]
    assert ok.mean() >= 0.95, (ok.mean(), bad[:5])
    assert browser.eval(f"window.depthcam.depthAt(300, {H - 10})") is None
    # Hovering the color image shows the same figure under the cursor.
    x, y = int(pts[0][0]), int(pts[0][1])
    hover(browser, "color", x, y)
    text = browser.wait_for("(() => { const t = document.getElementById('depth-hover')"
                            ".textContent; return t.endsWith(' m') && t; })()")
    shown = float(text.split(":")[1].split()[0])
    assert shown == pytest.approx(truth[0], rel=0.01), text


def test_ruler_measures_the_3d_distance(browser: Browser, server: Server) -> None:
    open_page(browser, server)
    pairs = [((40, 60), (600, 400)), ((100, 300), (330, 50)), ((250, 200), (520, 220))]
    for p1, p2 in pairs:
        truth = float(np.linalg.norm(point(*p1) - point(*p2)))
        got = browser.eval(f"window.depthcam.measure({list(p1)}, {list(p2)})")
        assert got == pytest.approx(truth, rel=0.02), (p1, p2, got, truth)
    # Two clicks on the depth image place the ruler; its label follows the live frames.
    p1, p2 = pairs[0]
    browser.eval(f"""(() => {{
        const img = document.getElementById('depth'), r = img.getBoundingClientRect();
        for (const [x, y] of [{list(p1)}, {list(p2)}]) img.dispatchEvent(new MouseEvent('click',
            {{bubbles: true, clientX: r.left + (x + 0.5) * r.width / {W},
              clientY: r.top + (y + 0.5) * r.height / {H}}}));
    }})()""")
    truth = float(np.linalg.norm(point(*p1) - point(*p2)))
    text = browser.wait_for("document.getElementById('depth-ruler').textContent.includes(' m')"
                            " && document.getElementById('depth-ruler').textContent")
    assert float(text.split(":")[1].split()[0]) == pytest.approx(truth, rel=0.02), text
    drawn = browser.eval("""(() => { const c = document.querySelector('.depth-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()""")
    assert drawn > 100, "the ruler's segment is not drawn"


def test_metric_is_open_only_while_needed(browser: Browser, server: Server) -> None:
    """/metric is downloaded while hovering, while a ruler is set and while a script calls
    depthAt; a page nobody measures on pulls only color and depth. Depth is read back one
    pixel at a time, never the whole metric frame. (The page's tools on /metric, as a
    browser without WebCodecs has them.)"""
    browser.goto(f"{server.base}/?token={TOKEN}&depth=metric")
    browser.wait_for("window.depthcam && window.depthcam.depthReady", timeout=20)
    wait_viewers(server, color=1, depth=1, metric=0)
    assert browser.eval("window.depthcam.metricNeeds()") == []
    browser.eval("""(() => { const get = CanvasRenderingContext2D.prototype.getImageData;
        window.__readMax = 0;
        CanvasRenderingContext2D.prototype.getImageData = function (x, y, w, h, ...rest) {
          window.__readMax = Math.max(window.__readMax, w * h);
          return get.call(this, x, y, w, h, ...rest); }; })()""")
    # Hovering opens it; leaving closes it after a short grace.
    x, y = 100, 100
    cx, cy = browser.eval(f"""(() => {{
        const r = document.getElementById('color').getBoundingClientRect();
        return [r.left + ({x} + 0.5) * r.width / {W}, r.top + ({y} + 0.5) * r.height / {H}];
    }})()""")
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=cx, y=cy)
    wait_viewers(server, metric=1)
    text = browser.wait_for("(() => { const t = document.getElementById('depth-hover')"
                            ".textContent; return t.endsWith(' m') && t; })()")
    assert float(text.split(":")[1].split()[0]) == pytest.approx(
        band_depth()[y, x] / 1000, rel=0.01), text
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=5)  # the header
    wait_viewers(server, metric=0)
    # A ruler keeps it open and follows the live frames, reading only its two ends.
    p1, p2 = (40, 60), (600, 400)
    browser.eval(f"window.depthcam.setRuler({list(p1)}, {list(p2)})")
    wait_viewers(server, metric=1)
    truth = float(np.linalg.norm(point(*p1) - point(*p2)))
    text = browser.wait_for("(() => { const t = document.getElementById('depth-ruler')"
                            ".textContent; return t.endsWith(' m') && t; })()")
    assert float(text.split(":")[1].split()[0]) == pytest.approx(truth, rel=0.02), text
    seen = browser.eval("window.depthcam.metric.frames")
    browser.wait_for(f"window.depthcam.metric.frames >= {seen} + 5", timeout=10)
    assert browser.eval("window.__readMax") == 1, "depth was read back beyond single pixels"
    browser.eval("window.depthcam.setRuler()")
    wait_viewers(server, metric=0)
    # A script's first call opens it; it closes once the calls stop for metricIdleMs.
    browser.eval("window.depthcam.metricIdleMs = 1000")
    assert browser.eval("window.depthcam.metricReady()") is True
    got = browser.eval("window.depthcam.depthAt(20, 20)")
    assert got == pytest.approx(BANDS_MM[0] / 1000, rel=0.01)
    assert viewers(server)["metric"] == 1
    wait_viewers(server, metric=0, timeout=5)
    assert browser.eval("window.depthcam.metricNeeds()") == []


def dv_viewers(server: Server) -> int:
    code, _, body = server.get(f"/status?token={TOKEN}", timeout=3)
    assert code == 200, body
    return json.loads(body)["depth_video"]["viewers"]


@pytest.mark.parametrize("source", ["video", "metric"])
def test_point_cloud_renders_live_on_the_gpu(browser: Browser, server: Server,
                                             source: str) -> None:
    open_page(browser, server, "3d", depth=source)
    assert browser.eval("window.depthcam.depthSource()") == source
    first = browser.wait_for("window.depthcam.cloud && window.depthcam.cloudStats().frames > 0"
                             " && window.depthcam.cloudStats()", timeout=20)
    later = browser.wait_for(f"(() => {{ const s = window.depthcam.cloudStats();"
                             f" return s.frames >= {first['frames']} + 3 ? s : null; }})()",
                             timeout=30)
    assert later["frames"] > first["frames"]
    valid = band_depth() > 0
    for step in (2, 4):
        browser.eval(f"(() => {{ const s = document.getElementById('decimate'); s.value = '{step}';"
                     " s.dispatchEvent(new Event('change')); })()")
        stats = browser.eval("window.depthcam.cloudStats()")
        want = int(valid[::step, ::step].sum())
        assert stats["step"] == step
        assert abs(stats["points"] - want) <= 0.02 * want, (step, stats, want)
    # Counting at other grid sizes replaces its render target: the old one is deleted.
    browser.eval("""(() => { const gl = window.depthcam.cloud.gl;
        window.__glLive = {texture: 0, framebuffer: 0};
        for (const kind of ["texture", "framebuffer"]) {
          const Kind = kind[0].toUpperCase() + kind.slice(1);
          const make = gl["create" + Kind].bind(gl), drop = gl["delete" + Kind].bind(gl);
          gl["create" + Kind] = () => { window.__glLive[kind]++; return make(); };
          gl["delete" + Kind] = (o) => { if (o) window.__glLive[kind]--; drop(o); };
        } })()""")
    for step in (8, 1, 4):
        browser.eval(f"(() => {{ const s = document.getElementById('decimate'); s.value = '{step}';"
                     " s.dispatchEvent(new Event('change'));"
                     " return window.depthcam.cloudStats().points; })()")
    assert browser.eval("window.__glLive") == {"texture": 0, "framebuffer": 0}
    # While the 3D view shows, the hidden 2D images download nothing: the cloud's color
    # and its depth stream are the page's only streams.
    assert browser.eval("[document.getElementById('color').getAttribute('src'),"
                        " document.getElementById('depth').getAttribute('src'),"
                        " window.depthcam.colorElement()]") == [None, None, None]
    wait_viewers(server, color=1, depth=0, metric=int(source == "metric"))
    deadline = time.monotonic() + 10
    while dv_viewers(server) != int(source == "video"):
        assert time.monotonic() < deadline, dv_viewers(server)
        time.sleep(0.1)
    # The metres the vertex shader decoded, read back from the GPU (every 4th pixel).
    gpu = browser.eval("(() => { const g = window.depthcam.cloud.gpuDepth();"
                       " return g && {w: g.width, h: g.height, data: Array.from(g.data)}; })()")
    assert gpu is not None, "no float render targets in this WebGL2"
    z = np.array(gpu["data"]).reshape(gpu["h"], gpu["w"])
    truth = band_depth()[::4, ::4] / 1000.0
    inner = np.zeros_like(truth, bool)  # grid points at least MARGIN pixels inside a band
    for i in range(len(BANDS_MM)):
        inner[:(H - INVALID_ROWS - MARGIN) // 4, (EDGES[i] + MARGIN + 3) // 4:
              (EDGES[i + 1] - MARGIN) // 4] = True
    close = np.abs(z[inner] - truth[inner]) <= 0.01 * truth[inner]
    assert close.mean() >= 0.95, close.mean()
    assert (z[truth == 0] == 0).mean() > 0.98
    # Orbit (drag), zoom (wheel), pan (right-drag) and pinch (two touches), as real input.
    orbit = ("(() => { const o = window.depthcam.cloud.orbit;"
             " return [o.yaw, o.pitch, o.distance, ...o.target]; })()")
    start = browser.eval(orbit)
    mouse = [("mousePressed", 400, 300, "left", 1), ("mouseMoved", 500, 350, "left", 1),
             ("mouseReleased", 500, 350, "left", 0), ("mousePressed", 400, 300, "right", 2),
             ("mouseMoved", 450, 300, "right", 2), ("mouseReleased", 450, 300, "right", 0)]
    for kind, x, y, button, buttons in mouse:
        browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button=button,
                     buttons=buttons, clickCount=1)
    browser.call("Input.dispatchMouseEvent", type="mouseWheel", x=450, y=300, deltaX=0,
                 deltaY=300)
    moved = browser.eval(orbit)
    assert moved[0] > start[0] and moved[1] > start[1], "dragging did not orbit"
    assert moved[2] > start[2], "the wheel did not zoom out"
    assert moved[3:] != start[3:], "right-dragging did not pan"
    browser.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)
    for kind, spread in (("touchStart", 50), ("touchMove", 100)):
        browser.call("Input.dispatchTouchEvent", type=kind, touchPoints=[
            {"x": 450 - spread, "y": 300, "id": 1}, {"x": 450 + spread, "y": 300, "id": 2}])
    browser.call("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])
    browser.call("Emulation.setTouchEmulationEnabled", enabled=False)
    assert browser.eval(orbit)[2] == pytest.approx(moved[2] / 2, rel=0.05), "pinch did not zoom"
    browser.wait_for(f"window.depthcam.cloudStats().frames > {later['frames']}", timeout=20)
    shot = browser.screenshot()
    box = browser.eval("(() => { const r = document.getElementById('cloud')"
                       ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
    x0, y0, x1, y1 = (int(v) for v in box)
    canvas = shot[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].astype(int)
    background = canvas[2, 2]
    lit = np.abs(canvas - background).sum(axis=2) > 60
    assert lit.mean() > 0.01, f"the 3D view looks blank ({lit.mean():.4f} lit)"
    # The points carry the color stream's colours: its red, green and blue quadrants.
    colours = canvas[lit]
    for ch in range(3):
        pure = (colours[:, ch] > 200) & (np.delete(colours, ch, axis=1).max(axis=1) < 60)
        assert pure.sum() > 50, f"no points in colour channel {ch}"
    # Back to 2D: the images play again and the cloud's streams are closed.
    browser.eval("document.getElementById('view-3d').click()")
    browser.wait_for("window.depthcam.colorElement() && !window.depthcam.cloud"
                     " && new URLSearchParams(location.search).get('view') === '2d'")
    wait_viewers(server, color=1, depth=1, metric=0, timeout=15)  # past the script's idle


# ---- holes: depth from the nearest pixel with depth ---------------------------------------

@pytest.fixture(scope="module")
def holed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("holes") / "holes.db3"
    rec = make_recording(path, W, H, 30, frames=30, depth_fn=holed_depth, baseline=0.0)
    with running("--source", rec["path"], "--width", str(W), "--height", str(H),
                 "--no-align", "--depth-max", "10", "--token", TOKEN) as srv:
        yield srv


def wait_ink(browser: Browser, check: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """overlay_ink once check(ink) holds (a canvas read back right after a redraw may still
    show the one before)."""
    deadline = time.monotonic() + timeout
    while True:
        ink = overlay_ink(browser)
        if check(ink):
            return ink
        assert time.monotonic() < deadline, ink
        time.sleep(0.1)


def overlay_ink(browser: Browser) -> dict:
    """How many pixels of the color image's overlay are drawn, and their centre (canvas
    pixels), with the canvas size."""
    return browser.eval("""(() => { const c = document.querySelector('.depth-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0, sx = 0, sy = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) {
          const p = (i - 3) / 4; n++; sx += p % c.width + 0.5; sy += Math.floor(p / c.width) + 0.5;
        }
        return {n, x: sx / n, y: sy / n, w: c.width, h: c.height}; })()""")


def test_depth_in_a_hole_comes_from_the_nearest_pixel(browser: Browser,
                                                       holed_server: Server) -> None:
    from depthclient import nearest_depth  # noqa: PLC0415

    # On /metric, which keeps every hole (the video fills lone holes and hole lines:
    # docs/DEPTH_VIDEO.md).
    open_page(browser, holed_server, depth="metric")
    truth = holed_depth() / 1000.0
    api = "window.depthcam"
    # The hole column: no depth at the pixel itself, the neighbour's within 1 %.
    rows = [24, 100, 200, 240, 333, 420]
    got = browser.eval(f"{rows}.map((y) => [{api}.depthAt({HOLE_COLUMN}, y, {{radius: 0}}),"
                       f" {api}.depthAt({HOLE_COLUMN}, y)])")
    for y, (bare, near) in zip(rows, got, strict=True):
        assert bare is None, (y, bare)
        assert near == pytest.approx(truth[y, HOLE_COLUMN - 1], rel=0.01), y
    # Single holes: the pixel taken is the one the Python client's rule picks.
    singles = [(x, y) for x in (24, 72, 184, 296, 408, 504, 600) for y in (24, 200, 408)]
    got = browser.eval(f"{[list(p) for p in singles]}.map(([x, y]) => {{"
                       f" const p = {api}.pointAt(x, y);"
                       f" return [{api}.depthAt(x, y, {{radius: 0}}), p && p.pixel, p && p[2]];"
                       " })")
    for (x, y), (bare, pixel, z) in zip(singles, got, strict=True):
        want = nearest_depth(truth, x, y)
        assert bare is None and want is not None and want[:2] == (x, y - 1)
        assert pixel == [want[0], want[1]], (x, y, pixel)
        assert z == pytest.approx(want[2], rel=0.01), (x, y)
    # measure() between a hole and a pixel with depth: the distance from the neighbour.
    p1, p2 = (HOLE_COLUMN, 240), (500, 100)
    want = float(np.linalg.norm(holed_point(HOLE_COLUMN - 1, 240) - holed_point(*p2)))
    assert browser.eval(f"{api}.measure({list(p1)}, {list(p2)})") == pytest.approx(want, rel=0.01)
    assert browser.eval(f"{api}.measure({list(p1)}, {list(p2)}, {{radius: 0}})") is None
    # Beyond the radius there is none: the bottom rows are 40 pixels without depth.
    edge = H - INVALID_ROWS - 1
    assert browser.eval(f"{api}.depthAt(300, {edge + 3})") == pytest.approx(truth[edge, 300],
                                                                            rel=0.01)
    assert browser.eval(f"{api}.depthAt(300, {edge + 7})") is None
    assert browser.eval(f"{api}.depthAt(300, {edge + 7}, {{radius: 8}})") == pytest.approx(
        truth[edge, 300], rel=0.01)
    # The ruler measures from the same pixels.
    browser.eval(f"{api}.setRuler({list(p1)}, {list(p2)})")
    text = browser.wait_for("(() => { const t = document.getElementById('depth-ruler')"
                            ".textContent; return t.endsWith(' m') && t; })()")
    assert float(text.split(":")[1].split()[0]) == pytest.approx(want, rel=0.01), text
    browser.eval(f"{api}.setRuler()")
    # Hovering a hole names the pixel measured and marks it on the picture. The real
    # pointer moves (Chromium repeats its last position as a mousemove when the page under
    # it changes); it lands on whole CSS pixels, so the pixel under it may be a neighbour
    # of the one aimed at: the read-out says which.
    pointer(browser, HOLE_COLUMN, 240)
    (x, y), (sx_, sy_), z = hover_readout(browser, HOLE_COLUMN, 240)
    assert x == HOLE_COLUMN, (x, y)
    assert (sx_, sy_) == (HOLE_COLUMN - 1, y)
    assert z == pytest.approx(truth[y, HOLE_COLUMN - 1], rel=0.01)
    pointer(browser, 300, edge + 3)
    (x, y), (sx_, sy_), _ = hover_readout(browser, 300, edge + 3)
    assert (sx_, sy_) == (x, edge) and y - edge >= 2, (x, y)
    ink = wait_ink(browser, lambda i: i["n"] > 10)
    kx, ky = ink["w"] / W, ink["h"] / H
    # The ring is centred on the pixel measured, not on the pointer's two or three below.
    wait_ink(browser, lambda i: i["n"] > 10 and abs(i["x"] - (x + 0.5) * kx) <= 1.0
             and abs(i["y"] - (edge + 0.5) * ky) <= 1.0)
    pointer(browser, 300, edge + 7)
    browser.wait_for("document.getElementById('depth-hover').textContent"
                     ".endsWith(': no depth')")
    wait_ink(browser, lambda i: i["n"] == 0)  # nothing measured, nothing marked
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=5)  # off the images


def pointer(browser: Browser, x: float, y: float) -> None:
    """Move the mouse over color pixel (x, y) of the color image."""
    cx, cy = browser.eval(f"""(() => {{
        const r = document.getElementById('color').getBoundingClientRect();
        return [r.left + ({x} + 0.5) * r.width / {W}, r.top + ({y} + 0.5) * r.height / {H}];
    }})()""")
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=cx, y=cy)


def hover_readout(browser: Browser, x: int, y: int,
                  timeout: float = 20.0) -> tuple[tuple[int, int], tuple[int, int], float]:
    """The pixel under the pointer, the pixel measured and the metres the read-out shows,
    once it shows metres for a pointer within a pixel of (x, y)."""
    pattern = re.compile(r"\((\d+), (\d+)\)(?: → \((\d+), (\d+)\))?: ([\d.]+) m")
    deadline = time.monotonic() + timeout
    while True:
        text = browser.eval("document.getElementById('depth-hover').textContent")
        m = pattern.fullmatch(text)
        if m and abs(int(m[1]) - x) <= 1 and abs(int(m[2]) - y) <= 1:
            at = (int(m[1]), int(m[2]))
            return at, ((int(m[3]), int(m[4])) if m[3] else at), float(m[5])
        assert time.monotonic() < deadline, text
        time.sleep(0.05)


def test_over_https_without_webgl2_the_2d_tools_work(recording: dict, tmp_path: Path) -> None:
    """The page over TLS in a Chromium without WebGL: the 3D button says so, depth reads."""
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run([require("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with running("--source", recording["path"], "--width", str(W), "--height", str(H),
                 "--no-align", "--depth-max", "10", "--token", TOKEN, "--cert", str(crt),
                 "--key", str(key), ready=False) as srv, \
            Browser(extra_flags=("--disable-3d-apis", "--ignore-certificate-errors")) as b:
        deadline = time.monotonic() + 30
        while True:  # until the TLS port answers
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
                break
            except ConnectionRefusedError:
                assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log()
                time.sleep(0.1)
        b.goto(f"https://127.0.0.1:{srv.port}/?view=3d&token={TOKEN}")
        b.wait_for("window.depthcam && window.depthcam.depthReady", timeout=30)
        if b.eval("window.depthcam.webgl2"):
            pytest.fail("--disable-3d-apis left WebGL2 on; the check cannot run")
        button = b.eval("(() => { const e = document.getElementById('view-3d');"
                        " return [e.disabled, e.textContent]; })()")
        assert button[0] is True and "WebGL2" in button[1]
        # ?view=3d asked for what this browser cannot show: the 2D images play instead.
        assert b.wait_for("window.depthcam.colorElement() !== null && window.depthcam.view()"
                          " === '2d' && document.getElementById('color').getAttribute('src')")
        assert b.eval("location.protocol") == "https:"
        got = b.wait_for("window.depthcam.depthAt(20, 20)", timeout=30)
        assert got == pytest.approx(BANDS_MM[0] / 1000, rel=0.01)


# ---- the Python client ------------------------------------------------------------------

def test_client_frames_pair_color_and_metres(server: Server) -> None:
    from depthclient import DepthClient  # noqa: PLC0415

    with DepthClient(server.base, token=TOKEN) as cam:
        frames = list(cam.frames(max_frames=3))
    truth = band_depth() / 1000.0
    valid = truth > 0
    for color, depth_m, ts in frames:
        assert color.shape == (H, W, 3) and depth_m.shape == (H, W) and ts > 0
        close = np.abs(depth_m[valid] - truth[valid]) <= 0.01 * truth[valid]
        assert close.mean() >= 0.95
        assert tuple(int(c) for c in color[H // 4, W // 4]) == pytest.approx((0, 0, 255), abs=8)


def test_ply_from_the_client_reads_back_with_plyfile(server: Server, tmp_path) -> None:  # noqa: ANN001
    from plyfile import PlyData  # noqa: PLC0415

    out = tmp_path / "cloud.ply"
    res = subprocess.run([PYTHON, "-m", "depthclient.ply", server.base, str(out), "--token", TOKEN],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    v = PlyData.read(str(out))["vertex"]
    depth = band_depth()
    rows, cols = np.nonzero(depth > 0)
    assert v.count == len(rows)
    xyz = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(float)
    z = depth[rows, cols] / 1000.0
    want = np.stack([(cols - W / 2) / FOCAL * z, (rows - H / 2) / FOCAL * z, z], axis=1)
    err = np.linalg.norm(xyz - want, axis=1) / np.linalg.norm(want, axis=1)
    assert err.max() <= 0.01
    red = (rows < H // 2) & (cols < W // 2)  # the top-left quadrant is red
    assert np.median(v["red"][red]) > 200 and np.median(v["blue"][red]) < 50
    bad = subprocess.run([PYTHON, "-m", "depthclient.ply", server.base, str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "401" in bad.stderr and "Traceback" not in bad.stderr


def test_a_source_without_depth_answers_409() -> None:
    port = free_port()
    with running("--source", f"tcp://127.0.0.1:{port}", "--width", "640", "--height", "480",
                 need_frames=False) as srv:
        deadline = time.monotonic() + 20
        while not srv.status()["source"]:  # the capture process describes its source
            assert time.monotonic() < deadline, "the tcp source never started"
            time.sleep(0.1)
        for path in ("/depth.png", "/camera.json", "/metric.jpg"):
            code, headers, body = srv.get(path)
            assert code == 409, path
            assert headers["content-type"] == "application/json"
            assert "no depth" in json.loads(body)["detail"]
        for route in ("/metric", "/depth-video"):
            r = MjpegReader(srv.port, route)
            try:
                assert r.status == 409, route
            finally:
                r.close()
        assert "Traceback" not in srv.log()


def test_page_depth_tools_work_behind_nginx(browser: Browser, server: Server,
                                            tmp_path: Path) -> None:
    """The documented nginx site in front: same origin, streams read with fetch()."""
    nginx = require("nginx")
    site = (ROOT / "deploy" / "nginx-camera.conf").read_text()
    proxy_port = free_port()
    site = site.replace("127.0.0.1:5000", f"127.0.0.1:{server.port}")
    site = re.sub(r"listen 8080;", f"listen 127.0.0.1:{proxy_port};", site)
    for d in ("logs", "tmp"):
        (tmp_path / d).mkdir()
    conf = tmp_path / "nginx.conf"
    temp = "".join(f"  {k}_temp_path {tmp_path}/tmp/{k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
                    "worker_processes 1;\nevents { worker_connections 64; }\n"
                    f"http {{\n  access_log off;\n{temp}{site}\n}}\n")
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:  # until nginx listens
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=1).close()
                break
            except ConnectionRefusedError:
                assert proc.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        browser.goto(f"http://127.0.0.1:{proxy_port}/?token={TOKEN}")
        got = browser.wait_for("window.depthcam && window.depthcam.depthReady"
                               " && window.depthcam.depthAt(20, 20)", timeout=20)
        assert got == pytest.approx(BANDS_MM[0] / 1000, rel=0.01)
    finally:
        proc.terminate()
        proc.wait(10)
