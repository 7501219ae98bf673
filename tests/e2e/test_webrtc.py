"""H.264 over WebRTC: the real Janus from the distribution, a real headless Chromium.

One server (synthetic 720p30, --webrtc, access-controlled) and one browser serve the
whole module; the page is opened once with ?player=webrtc and later tests build on it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline import supervisor
from tests.browser import Browser
from tests.conftest import require
from tests.helpers import (
    RATE_SHARE,
    Server,
    Watcher,
    children_of,
    pid_alive,
    running,
    shm_segments,
)
from webrtc import janus

TOKEN = "rtc-s3cret"
USER, PASSWORD = "viewer", "pw-rtc"
STATS = "window.depthcam.webrtcStats()"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    require("janus")
    with running("--source", "synthetic", "--width", "1280", "--height", "720", "--fps", "30",
                 "--webrtc", "--auth", f"{USER}:{PASSWORD}", "--token", TOKEN) as srv:
        yield srv
        # A clean stop leaves no Janus behind and removes its working directory.
        janus_pid = _status(srv)["janus"]["pid"]
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(15) == 0
        assert janus_pid and not pid_alive(janus_pid), "Janus outlived the server"
        assert not Path(tempfile.gettempdir(), f"rsmjpeg-{srv.pid}-janus").exists()
        assert not shm_segments(srv.pid)


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Browser]:
    with Browser() as b:
        b.goto(f"{server.base}/?player=webrtc&token={TOKEN}")
        yield b


def _janus_pids() -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "janus":
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _parent_chain_has(pid: int, ancestor: int) -> bool:
    for _ in range(10):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


def _get(srv: Server, path: str, auth: bool = True) -> tuple[int, bytes]:
    import http.client  # noqa: PLC0415

    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _post(srv: Server, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    import http.client  # noqa: PLC0415

    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps({"transaction": "t", **body}),
                     headers={"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def _status(srv: Server) -> dict:
    code, body = _get(srv, "/status")
    assert code == 200, body
    return json.loads(body)


def _frames(page: Browser) -> int:
    s = page.eval(STATS)
    return int(s["framesDecoded"]) if s else 0


def _wait_frames_after(page: Browser, t0: float, need: int, timeout: float) -> float:
    """Seconds from t0 until the page has decoded `need` more frames than it had at t0
    (counting across reconnects, which start a new peer connection at zero)."""
    total, last = 0, _frames(page)
    deadline = t0 + timeout
    while time.time() < deadline:
        now = _frames(page)
        total += now - last if now >= last else now
        last = now
        if total >= need:
            return time.time() - t0
        time.sleep(0.1)
    raise AssertionError(f"WebRTC video did not resume within {timeout} s "
                         f"(state {page.eval('window.depthcam.webrtcState()')}, "
                         f"console {page.console[-5:]})")


def test_page_plays_720p_h264_at_the_capture_rate(server: Server, page: Browser) -> None:
    # Measure the steady state: past the first 3 s of video, when browser and server
    # have finished starting up.
    page.wait_for(f"{STATS}.then(s => s && s.framesDecoded > 90)", timeout=40)
    st0 = _status(server)
    mark = server.mark(st0)
    first, t0 = page.eval(STATS), time.monotonic()
    time.sleep(4.0)
    last, t1 = page.eval(STATS), time.monotonic()
    st1 = _status(server)
    rates = server.rates(mark, st1)
    encoded = (st1["h264"]["frames"] - st0["h264"]["frames"]) / rates.seconds
    fps = (last["framesDecoded"] - first["framesDecoded"]) / (t1 - t0)
    assert (last["frameWidth"], last["frameHeight"]) == (1280, 720)
    # The browser decodes every frame the H.264 stage encoded meanwhile (the stage
    # encodes the newest capture whenever it is free, so on a loaded machine it may
    # encode fewer than were captured: that is its rate, not the path's to the browser).
    detail = (f"{fps:.1f} frames decoded per second, {encoded:.1f} encoded, {rates} "
              f"(load {os.getloadavg()})")
    assert fps >= RATE_SHARE * encoded, detail
    assert 0 < encoded <= rates.captured * 1.1 + 1, detail
    assert last["bytesReceived"] > first["bytesReceived"]
    state = page.eval("window.depthcam.webrtcState()")
    assert state["player"] == "webrtc" and state["status"] == "playing"
    # The MJPEG <img> for color is closed while WebRTC plays: bytes are not spent twice.
    assert page.eval("document.getElementById('color').getAttribute('src')") is None


def test_page_tools_follow_the_webrtc_video(server: Server, page: Browser) -> None:
    """Stamp, hover read-out and ruler work on whichever element shows color."""
    page.wait_for("window.depthcam.webrtcState().status === 'playing'", timeout=40)
    assert page.eval("window.depthcam.colorElement().id") == "color-video"
    stamp = page.wait_for("window.depthcam.stampOf('color')")
    assert 0 <= time.time() - stamp < 5.0
    age = page.eval("window.depthcam.frameAge()")
    assert age is not None and 0 <= age < 5.0
    x, y = page.eval("""(() => { const r = document.getElementById('color-video')
        .getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()""")
    page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    text = page.wait_for("(() => { const t = document.getElementById('depth-hover').textContent;"
                         " return (t.endsWith(' m') || t.endsWith('no depth')) && t; })()")
    px, py = (int(v) for v in text[1:text.index(")")].split(","))
    assert abs(px - 640) <= 1 and abs(py - 360) <= 1, text  # the middle of the 720p frame
    page.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=5)
    # The ruler's overlay covers the video, not a hidden <img> of size zero.
    page.eval("window.depthcam.setRuler([100, 100], [1100, 600])")
    page.wait_for("document.getElementById('depth-ruler').textContent.endsWith(' m')")
    box = page.eval("""(() => { const c = document.querySelector('#color-video ~ .depth-overlay'),
        v = document.getElementById('color-video'),
        d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
        return {w: c.width, h: c.height, vw: v.clientWidth, vh: v.clientHeight, drawn: n}; })()""")
    page.eval("window.depthcam.setRuler()")
    assert box["vw"] > 0 and (box["w"], box["h"]) == (box["vw"], box["vh"]), box
    assert box["drawn"] > 100, box


def _stream_viewers(srv: Server) -> dict[str, int]:
    """Connected clients of each multipart stream, from /status."""
    return {name: v["viewers"] for name, v in _status(srv)["streams"].items()}


def _wait_stream_viewers(srv: Server, before: dict[str, int], timeout: float = 10.0,
                         **want: int) -> dict[str, int]:
    """Wait until each named stream has `want` clients more than `before` (other pages of
    this module may be open)."""
    deadline = time.monotonic() + timeout
    while True:
        now = _stream_viewers(srv)
        if all(now[k] - before[k] == v for k, v in want.items()):
            return now
        assert time.monotonic() < deadline, f"{now} {before} {want}"
        time.sleep(0.1)


def test_3d_view_colours_from_webrtc_and_depth_video_alone(server: Server) -> None:
    """With the WebRTC player the 3D view is WebRTC colour plus the depth video: no MJPEG
    stream at all. Back on MJPEG it opens its own /color; back in 2D the video shows."""
    cloud = "window.depthcam.cloudStats()"
    others = _stream_viewers(server)
    with Browser(webgl=True, width=900, height=600) as b:
        b.goto(f"{server.base}/?player=webrtc&token={TOKEN}")
        b.wait_for("window.depthcam.depthReady && window.depthcam.webgl2"
                   " && window.depthcam.webrtcState().status === 'playing'", timeout=40)
        assert b.eval("window.depthcam.depthSource()") == "video"
        b.eval("document.getElementById('view-3d').click()")
        first = b.wait_for(f"window.depthcam.cloud && {cloud}.frames > 0"
                           f" && {cloud}.color === 'webrtc' && {cloud}", timeout=40)
        decoded = _frames(b)
        b.wait_for(f"{cloud}.frames >= {first['frames']} + 10"
                   f" && {cloud}.color_frames >= {first['color_frames']} + 10", timeout=40)
        assert _frames(b) > decoded, "the WebRTC video stopped behind the 3D view"
        assert b.eval("window.depthcam.webrtcState().status") == "playing"
        assert b.eval(f"{cloud}.color") == "webrtc"
        assert b.eval("[document.getElementById('color').getAttribute('src'),"
                      " document.getElementById('depth').getAttribute('src'),"
                      " window.depthcam.colorElement()]") == [None, None, None]
        _wait_stream_viewers(server, others, color=0, depth=0, combined=0, metric=0)
        # The synthetic scene is colourful: the points carry the video's colours.
        shot = b.screenshot()
        x0, y0, x1, y1 = (int(v) for v in b.eval(
            "(() => { const r = document.getElementById('cloud').getBoundingClientRect();"
            " return [r.left, r.top, r.right, r.bottom]; })()"))
        canvas = shot[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].astype(int)
        lit = np.abs(canvas - canvas[2, 2]).sum(axis=2) > 60
        assert lit.mean() > 0.01, f"the 3D view looks blank ({lit.mean():.4f} lit)"
        spread = canvas[lit].std(axis=0)
        assert (spread > 20).all(), f"the points have no colour from the video: {spread}"
        # MJPEG player: the cloud opens its own /color, and closes it when WebRTC is back.
        b.eval("window.depthcam.setPlayer('mjpeg')")
        b.wait_for(f"{cloud}.color === 'mjpeg'", timeout=20)
        _wait_stream_viewers(server, others, color=1, depth=0)
        b.eval("window.depthcam.setPlayer('webrtc')")
        b.wait_for(f"window.depthcam.webrtcState().status === 'playing'"
                   f" && {cloud}.color === 'webrtc'", timeout=40)
        _wait_stream_viewers(server, others, color=0, depth=0)
        b.eval("document.getElementById('view-3d').click()")
        b.wait_for("window.depthcam.webrtcState().status === 'playing'"
                   " && window.depthcam.colorElement()"
                   " && window.depthcam.colorElement().id === 'color-video'", timeout=40)
        assert b.eval("document.getElementById('color').getAttribute('src')") is None
        assert b.eval("window.depthcam.cloud") is None


def test_status_and_metrics_show_the_stage_and_janus(server: Server, page: Browser) -> None:
    page.wait_for(f"{STATS}.then(s => s && s.framesDecoded > 0)", timeout=40)
    st = _status(server)
    assert st["janus"]["up"] is True and st["janus"]["viewers"] >= 1
    h = st["h264"]
    assert h["consumers"] >= 1 and h["fps"] > 0 and h["keyframes"] >= 1
    assert 0 < h["bitrate_bps"] < 3 * h["target_bitrate_bps"]
    assert h["encode_ms"] > 0
    code, body = _get(server, "/metrics")
    text = body.decode()
    assert code == 200
    assert "camera_janus_up 1.0" in text
    assert "camera_webrtc_viewers" in text and "camera_h264_keyframes_total" in text


def test_h264_ring_holds_baseline_access_units(server: Server, page: Browser) -> None:
    """A consumer of the shared ring (as the push sink will be) gets a decodable stream."""
    from pipeline.shm import FLAG_KEYFRAME, FrameRing  # noqa: PLC0415

    page.wait_for(f"{STATS}.then(s => s && s.framesDecoded > 0)", timeout=40)
    st = _status(server)
    # Long enough for a keyframe to come round and 45 units after it, twice over, at the
    # rate the stage encodes now.
    within = 2 * (st["h264"]["gop"] + 45) / max(st["h264"]["fps"], 1.0)
    ring = FrameRing.attach(f"rsmjpeg-{server.pid}-h264")
    try:
        data, frames, started = bytearray(), 0, False
        nxt = ring.counter() + 1
        deadline = time.monotonic() + within
        while frames < 45 and time.monotonic() < deadline:
            if nxt > ring.counter():
                time.sleep(0.005)
                continue
            # Every unit in turn, as the push reads them (read_latest could skip one).
            got = ring.read_counter(nxt)
            if got is None:  # overwritten: more than a ring behind; from the next keyframe
                started, frames, nxt = False, 0, ring.counter() + 1
                data.clear()
                continue
            meta, au = got
            nxt += 1
            if meta.flags & FLAG_KEYFRAME:
                started = True
            if started:
                data += au
                frames += 1
    finally:
        ring.close()
    assert frames >= 45, "no run of 45 consecutive access units from a keyframe"
    with tempfile.NamedTemporaryFile(suffix=".h264") as f:
        f.write(data)
        f.flush()
        probe = subprocess.run(
            [require("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=profile,width,height,nb_read_frames,has_b_frames",
             "-of", "json", f.name], capture_output=True, text=True, timeout=30, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["profile"] == "Constrained Baseline"
    assert (stream["width"], stream["height"]) == (1280, 720)
    assert int(stream["nb_read_frames"]) == frames
    assert int(stream["has_b_frames"]) == 0


def test_killing_h264_then_janus_spares_mjpeg_and_webrtc_recovers(
        server: Server, page: Browser) -> None:
    page.wait_for(f"{STATS}.then(s => s && s.framesDecoded > 0)", timeout=40)
    st = _status(server)
    h264_pid, janus_pid = st["h264"]["pid"], st["janus"]["pid"]
    mjpeg = Watcher(server.port, f"/color?token={TOKEN}")
    mjpeg.start()
    try:
        time.sleep(1.0)
        # The H.264 stage is the supervisor's child and Janus the web's, restarted with
        # the same backoff: each within a backoff and a process start.
        assert janus.BACKOFF_FIRST_S == supervisor.BACKOFF_FIRST_S
        deadline = server.restart_deadline()
        t_h264 = time.time()
        os.kill(h264_pid, signal.SIGKILL)
        resumed_h264 = _wait_frames_after(page, t_h264, need=10, timeout=deadline)
        t_janus = time.time()
        os.kill(janus_pid, signal.SIGKILL)
        resumed_janus = _wait_frames_after(page, t_janus, need=10, timeout=deadline)
        time.sleep(0.5)
        assert mjpeg.error is None, f"an MJPEG client lost its stream: {mjpeg.error!r}"
        for t in (t_h264, t_janus):
            delay = mjpeg.resumed_after(t)
            assert delay is not None and delay < 1.0, f"MJPEG stalled {delay} s after a kill"
        gaps = [b[0] - a[0] for a, b in zip(mjpeg.parts, mjpeg.parts[1:], strict=False)]
        assert max(gaps) < 1.0, f"MJPEG parts {max(gaps):.2f} s apart"
    finally:
        mjpeg.close()
    assert resumed_h264 < deadline and resumed_janus < deadline
    st = _status(server)
    assert st["h264"]["restarts"] == 1 and st["h264"]["pid"] != h264_pid
    assert st["janus"]["up"] and st["janus"]["pid"] != janus_pid
    assert not pid_alive(janus_pid)
    log = server.log()
    assert log.count("h264 process died") == 1
    assert "Janus exited (signal SIGKILL)" in log
    assert "Traceback" not in log


def test_signalling_requires_credentials_and_passes_only_viewing(server: Server) -> None:
    create = {"janus": "create", "transaction": "t1"}
    code, _ = _post(server, "/webrtc/janus", create, {})
    assert code == 401
    assert _get(server, "/webrtc/config", auth=False)[0] == 401
    assert _get(server, "/webrtc/janus/1?maxev=1", auth=False)[0] == 401
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    code, doc = _post(server, "/webrtc/janus", create, {"Authorization": basic})
    assert code == 200 and doc["janus"] == "success", doc
    session = doc["data"]["id"]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    code, doc = _post(server, f"/webrtc/janus/{session}",
                      {"janus": "attach", "plugin": "janus.plugin.videoroom"}, bearer)
    assert code == 403
    code, doc = _post(server, f"/webrtc/janus/{session}",
                      {"janus": "attach", "plugin": "janus.plugin.streaming"}, bearer)
    assert code == 200 and doc["janus"] == "success", doc
    handle = doc["data"]["id"]
    for body in ({"request": "create", "type": "rtp"}, {"request": "watch", "id": 99},
                 {"request": "list"}):
        code, _ = _post(server, f"/webrtc/janus/{session}/{handle}",
                        {"janus": "message", "body": body}, bearer)
        assert code == 403, body
    code, doc = _post(server, f"/webrtc/janus/{session}", {"janus": "destroy"}, bearer)
    assert code == 200 and doc["janus"] == "success"


def test_missing_janus_leaves_mjpeg_serving() -> None:
    with running("--source", "synthetic", "--width", "640", "--height", "480", "--webrtc",
                 "--janus-bin", "/nonexistent/janus") as srv:
        st = srv.status()
        assert st["h264"] is None and st["janus"] is None
        w = Watcher(srv.port)
        w.start()
        try:
            deadline = time.monotonic() + 10
            while len(w.parts) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(w.parts) >= 5 and w.error is None
        finally:
            w.close()
        assert srv.get("/webrtc/config")[0] == 404
        with Browser() as b:
            b.goto(f"{srv.base}/?player=webrtc")
            why = b.wait_for("document.getElementById('webrtc-why').textContent")
            assert "without --webrtc" in why, why
            assert b.eval("window.depthcam.webrtcState().status") == "unavailable"
            assert b.wait_for("window.depthcam.stampOf('color')"), "no MJPEG in the page"
        assert not [p for p in _janus_pids() if _parent_chain_has(p, srv.pid)]
        assert len(children_of(srv.pid)) >= 3
        log = srv.log()
    lines = [ln for ln in log.splitlines() if "janus" in ln.lower()]
    assert len(lines) == 1, lines
    assert "WebRTC off: Janus binary /nonexistent/janus not found" in lines[0]
    assert "Traceback" not in log


def test_janus_that_cannot_start_is_one_line_and_mjpeg_runs_on() -> None:
    with running("--source", "synthetic", "--width", "640", "--height", "480", "--webrtc",
                 "--janus-bin", "/bin/false") as srv:
        deadline = time.monotonic() + 15
        while "Janus did not start" not in srv.log():
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.1)
        st = srv.status()
        assert st["janus"]["up"] is False and st["h264"]["consumers"] == 0
        # The page asked for WebRTC: it shows MJPEG instead and says why.
        with Browser() as b:
            b.goto(f"{srv.base}/?player=webrtc")
            why = b.wait_for("document.getElementById('webrtc-why').textContent")
            assert "not reachable" in why and "showing MJPEG" in why, why
            assert b.wait_for("window.depthcam.stampOf('color')"), "no MJPEG in the page"
        w = Watcher(srv.port)
        w.start()
        try:
            deadline = time.monotonic() + 10
            while len(w.parts) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(w.parts) >= 5 and w.error is None
        finally:
            w.close()
        log = srv.log()
    lines = [ln for ln in log.splitlines() if "janus" in ln.lower()]
    assert len(lines) == 1, lines
    assert "Janus did not start (code 1)" in lines[0]
    assert "Traceback" not in log


def test_external_janus_is_used_not_started(tmp_path: Path) -> None:
    """--janus URL: no Janus of ours; RTP, viewer count and signalling go to that one."""
    from webrtc.janus import JanusProcess, write_config  # noqa: PLC0415
    from webrtc.options import WebRTCOptions, allocate  # noqa: PLC0415

    require("janus")
    ext = allocate(WebRTCOptions(), str(tmp_path))
    ext = WebRTCOptions(**{**ext.__dict__, "api_secret": ""})
    gateway = JanusProcess(ext, write_config(ext, 640, 480))
    gateway.start()
    try:
        rtp = f"127.0.0.1:{ext.video_port}:{ext.rtcp_port}"
        with running("--source", "synthetic", "--width", "640", "--height", "480",
                     "--webrtc", "--janus", ext.api_url, "--janus-rtp", rtp) as srv:
            deadline = time.monotonic() + 20
            while not srv.status()["janus"]["up"]:
                assert time.monotonic() < deadline, srv.log()
                time.sleep(0.2)
            st = srv.status()
            assert st["janus"]["private"] is False and st["janus"]["pid"] is None
            assert not [p for p in _janus_pids() if _parent_chain_has(p, srv.pid)]
            code, doc = _post(srv, "/webrtc/janus", {"janus": "create"}, {})
            assert code == 200 and doc["janus"] == "success", doc
    finally:
        gateway.stop()


def test_sigkilled_server_leaves_no_janus() -> None:
    srv = Server("--source", "synthetic", "--width", "640", "--height", "480", "--webrtc")
    try:
        srv.wait_ready()
        deadline = time.monotonic() + 20
        while not srv.status()["janus"]["up"]:
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        janus_pid = srv.status()["janus"]["pid"]
        os.kill(srv.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(janus_pid):
            assert time.monotonic() < deadline, "Janus outlived a SIGKILLed server"
            time.sleep(0.1)
    finally:
        srv.kill()


@pytest.mark.parametrize("args", [
    ("--janus", "http://gw:8088/janus"),
    ("--webrtc", "--janus", "ftp://gw/janus", "--janus-rtp", "gw:5004:5005"),
    ("--webrtc", "--janus", "http://gw:8088/janus"),
    ("--webrtc", "--janus", "http://gw:8088/janus", "--janus-rtp", "gw:5004:99999"),
    ("--webrtc", "--ice-server", "example.org"),
    ("--webrtc", "--h264-bitrate", "5"),
    ("--webrtc", "--h264-gop", "0"),
])
def test_bad_webrtc_options_are_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    from tests.helpers import PYTHON, ROOT  # noqa: PLC0415

    proc = subprocess.run([PYTHON, str(ROOT / "app_mp.py"), *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("app_mp.py: error: "), proc.stderr
