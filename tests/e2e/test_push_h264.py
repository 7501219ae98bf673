"""The H.264 push: MPEG-TS to ffmpeg over a shaped link and over loopback, FLV to
nginx-rtmp, RTSP to ffmpeg.

Receivers are the distribution's programs: `ffmpeg -listen 1 -f mpegts` (it copies the TS
out with the sender's timestamps, whose PTS is the capture time), nginx with its RTMP
module writing HLS, read back by ffprobe, and `ffmpeg -rtsp_flags listen`. The pusher is
app_https_client.py --format h264.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from depthclient.ts import read_ts
from tests.camera.rs_recording import make_recording, scene_depth
from tests.conftest import require
from tests.helpers import PYTHON, RATE_SHARE, ROOT, free_port
from tests.shaped import (
    PTS_WRAP,
    ShapedLink,
    TsReceiver,
    kill_group,
    probe_frames,
    pusher,
    require_namespaces,
    summary,
)

H264 = ("--format", "h264", "--gps", "none")
HD = ("--stream", "color", "--width", "1280", "--height", "720", "--fps", "30")
SD = ("--width", "640", "--height", "480", "--fps", "30")


def wait_until(cond: object, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            detail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"timed out waiting for {what}\n{detail}")
        time.sleep(0.05)


def decode_errors(path: Path) -> str:
    """What ffmpeg complains about while decoding the whole file (empty: clean).

    The frames keep the stream's own 90 kHz time base (passthrough): in ffmpeg's default
    1/frame-rate one, two frames captured closer than a frame interval apart (capture
    catching up on a loaded machine) round to one timestamp, and the null muxer reports
    that as non-monotonic DTS although every frame decoded. Two units carrying the very
    same capture time still show up here.
    """
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
                           "-fps_mode", "passthrough", "-enc_time_base", "-1", "-f", "null",
                           "-"], capture_output=True, text=True, timeout=120).stderr.strip()


def client(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen([PYTHON, str(ROOT / "app_https_client.py"), *args], cwd=ROOT,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def link() -> Iterator[ShapedLink]:
    require_namespaces()
    with ShapedLink(4, tag="h") as lk:
        yield lk


def test_720p_h264_over_4mbit_keeps_the_capture_rate_and_starts_decodable(
        link: ShapedLink, tmp_path: Path) -> None:
    log, ts = tmp_path / "push.log", tmp_path / "rx.ts"
    with TsReceiver(link, 8100, tmp_path / "ffmpeg.log", ts) as rx, \
            pusher(link, 8100, log, *HD, *H264):
        wait_until(lambda: len(rx.arrivals) > 0, 40, "the first access unit", log)
        time.sleep(2.0)  # the bit rate climbs to what the link carries
        t0 = time.time()
        time.sleep(8.0)
        frames = rx.window(t0, time.time())
        first = rx.arrivals[0]
    arrivals = list(rx.arrivals)
    n_received = len(arrivals)
    s = summary(frames, 8.0)
    text = log.read_text(errors="replace")
    # Delivery keeps pace with production: the units that arrived over 8 s were captured
    # over (nearly) 8 s too. A link that could not carry the rate would deliver 8 s of
    # arrivals captured over a shorter span, and fall further behind.
    captured_span = frames[-1].ts_capture - frames[0].ts_capture
    arrived_span = frames[-1].t - frames[0].t
    assert captured_span >= RATE_SHARE * arrived_span, (captured_span, arrived_span, s)
    produced = (len(frames) - 1) / captured_span  # the pusher's capture rate, as it ran
    assert s["fps"] >= RATE_SHARE * produced, (s, produced, text[-2000:])
    assert s["p50_ms"] <= 300, s
    # H.264 at the link's pace: ~4 Mbit/s of 720p is 10-20 KB a frame, not JPEG's 100+ KB.
    assert s["kbytes"] * 8 * s["fps"] / 1000 < 4.0, s
    decoded = probe_frames(ts)
    assert decoded, "ffprobe decoded nothing"
    # The very first unit received is a keyframe of the right size, and it decodes:
    # a receiver shows the picture from its first second on.
    head = decoded[0]
    assert head["key_frame"] == "1" and (head["width"], head["height"]) == ("1280", "720")
    pts0 = float(head["pts_time"])
    offset = (first.ts_capture - pts0) % PTS_WRAP
    assert min(offset, PTS_WRAP - offset) < 1e-3, offset
    # ffprobe decodes every unit that arrived (a last one cut by the stop aside), so the
    # receiver's count above is the file's; the first second already plays: every unit
    # the pusher captured in it and delivered decodes, none waits for a later keyframe.
    # (How many it captured then is the start's pace on this machine, not the push's.)
    assert len(decoded) >= n_received - 1, (len(decoded), n_received)
    sent_first = sum(a.ts_capture - first.ts_capture < 1.0 - 1e-3 for a in arrivals)
    played_first = sum(float(f["pts_time"]) - pts0 < 1.0 for f in decoded)
    assert played_first >= sent_first > 1, (played_first, sent_first)
    assert decode_errors(ts) == ""
    assert "Traceback" not in text


def test_720p_h264_and_depth_over_4mbit_both_keep_pace(link: ShapedLink,
                                                       tmp_path: Path) -> None:
    """Colour and the depth video in one TS over the 4 Mbit/s link: each stream delivers
    what its stage produced, colour within the latency the colour-only push has, and the
    depth decodes to metres. (The bytes cross unchanged: the accuracy on a known depth is
    the loopback test's, below.)"""
    log, ts = tmp_path / "push.log", tmp_path / "rx.ts"
    with TsReceiver(link, 8102, tmp_path / "ffmpeg.log", ts, all_streams=True) as rx, \
            pusher(link, 8102, log, *HD, *H264, "--depth"):
        wait_until(lambda: rx.arrivals and rx.depth_arrivals, 40, "both streams", log)
        time.sleep(2.0)  # the bit rate climbs to what the link carries
        t0 = time.time()
        time.sleep(8.0)
        t1 = time.time()
        colour, depth = rx.window(t0, t1), rx.window(t0, t1, depth=True)
    text = log.read_text(errors="replace")
    for name, units in (("colour", colour), ("depth", depth)):
        s = summary(units, t1 - t0)
        captured_span = units[-1].ts_capture - units[0].ts_capture
        arrived_span = units[-1].t - units[0].t
        assert captured_span >= RATE_SHARE * arrived_span, (name, s, text[-2000:])
        produced = (len(units) - 1) / captured_span
        assert s["fps"] >= RATE_SHARE * produced, (name, s, produced)
    both = summary(colour, t1 - t0)
    assert both["p50_ms"] <= 300, both
    bits = sum(a.nbytes for a in colour + depth) * 8 / (t1 - t0)
    assert bits < 4e6, bits
    frames = list(read_ts(ts))
    assert len(frames) >= len(depth)
    for f in frames[-5:]:
        d = f.depth_m[f.depth_m > 0]
        assert d.size > f.depth_m.size // 2 and d.min() >= 0.3 and d.max() <= 6.0
    assert "Traceback" not in text


def test_tcp_h264_restarts_at_a_keyframe_on_every_reconnect(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "push.log"
    proc = client(log, "-v", f"tcp://127.0.0.1:{port}", *SD, *H264, "-r", "0.5")
    try:
        for n in (1, 2):
            ts = tmp_path / f"rx{n}.ts"
            with TsReceiver(None, port, tmp_path / f"ffmpeg{n}.log", ts, scheme="tcp") as rx:
                t_listen = time.time()
                wait_until(lambda rx=rx: len(rx.arrivals) >= 30, 40, "30 access units", log)
                started = rx.arrivals[0].t - t_listen
            decoded = probe_frames(ts)
            assert decoded[0]["key_frame"] == "1", decoded[:3]
            assert (decoded[0]["width"], decoded[0]["height"]) == ("640", "480")
            assert len(decoded) >= 30
            assert decode_errors(ts) == ""
            if n == 2:  # retry 0.5 s, then the keyframe asked for on connecting
                assert started < 3.0, started
    finally:
        kill_group(proc)
    text = log.read_text(errors="replace")
    assert text.count("connected to tcp://") >= 2
    # One encoder for the whole run: the stage opened once, a reconnect only asks for an IDR.
    assert text.count("H.264 640x480") == 1, text
    assert "Traceback" not in text


def streams_of(path: Path) -> list[tuple[str, str, str]]:
    """(codec, profile, pixel format) of each stream of a file, by ffprobe."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [(st["codec_name"], st.get("profile", ""), st.get("pix_fmt", ""))
            for st in json.loads(out)["streams"]]


def test_depth_rides_beside_colour_and_a_recording_of_it_reads_back_as_metres(
        tmp_path: Path) -> None:
    """The depth video as the TS's second stream, received by ffmpeg (-map 0 -c copy) and
    turned into metres and points by depthclient.ts, on the known-depth recording."""
    from plyfile import PlyData  # noqa: PLC0415

    w, h = 640, 480
    rec = make_recording(tmp_path / "scene.db3", w, h, 30, frames=30,
                         depth_fn=lambda _n: scene_depth(w, h), baseline=0.0)
    port = free_port()
    log, ts = tmp_path / "push.log", tmp_path / "rx.ts"
    with TsReceiver(None, port, tmp_path / "ffmpeg.log", ts, all_streams=True) as rx:
        proc = client(log, "-v", f"http://127.0.0.1:{port}", "--source", rec["path"],
                      "--no-align", "--depth-max", "10", *SD, *H264, "--depth")
        try:
            wait_until(lambda: len(rx.depth_arrivals) >= 30 and len(rx.arrivals) >= 30, 60,
                       "30 units of each stream", log)
        finally:
            kill_group(proc)
    assert streams_of(ts) == [("h264", "Constrained Baseline", "yuv420p"),
                              ("h264", "High 10", "yuv420p10le")]
    out = tmp_path / "frames"
    res = subprocess.run([PYTHON, "-m", "depthclient.ts", str(ts), str(out), "--ply",
                          "--step", "8"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    frames = sorted(out.glob("*.npz"))
    assert len(frames) >= 25, len(frames)
    truth = scene_depth(w, h) / 1000.0
    valid = truth > 0
    colour_times = [float(fr["pts_time"]) for fr in probe_frames(ts)]
    within, paired = 0, 0
    for path in frames:
        f = np.load(path)
        got = f["depth_m"]
        assert (np.abs(got[valid] - truth[valid]) <= 0.01 * truth[valid]).mean() >= 0.99
        # Where the file has colour (ffmpeg may start copying one stream a GOP after the
        # other), each depth frame comes with the colour of its capture.
        if colour_times[0] <= float(f["pts"]) <= colour_times[-1]:
            within += 1
            paired += "color_bgr" in f
    assert within >= 10 and paired >= within - 1, (within, paired)
    v = PlyData.read(str(out / frames[-1].name.replace(".npz", ".ply")))["vertex"]
    assert v.count > 1000
    z = np.asarray(v["z"], float)
    assert np.all((np.abs(z - 0.8) <= 0.008) | (np.abs(z - 1.5) <= 0.015))  # box, plane
    text = log.read_text(errors="replace")
    assert "and depth (10-bit H.264)" in text and "Traceback" not in text


@pytest.mark.parametrize("args", [
    ("--depth",),  # MJPEG: nothing to put depth beside
    ("--format", "h264", "--depth", "-v", "rtmp://127.0.0.1:1935/live/x"),
])
def test_depth_needs_h264_in_a_ts(args: tuple[str, ...]) -> None:
    argv = [PYTHON, str(ROOT / "app_https_client.py"), *args]
    if "-v" not in args:
        argv += ["-v", "http://127.0.0.1:9/"]
    res = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "--depth" in lines[0], res.stderr


NGINX_RTMP = """
load_module {module};
pid {d}/nginx.pid;
error_log {d}/error.log;
daemon off;
master_process off;
events {{ worker_connections 64; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    application live {{
      live on;
      hls on;
      hls_path {d}/hls;
      hls_fragment 1s;
      hls_playlist_length 30s;
    }}
  }}
}}
"""
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def test_rtmp_publish_to_nginx_becomes_h264_hls(tmp_path: Path) -> None:
    nginx = require("nginx")
    if not Path(RTMP_MODULE).exists():
        pytest.fail("nginx's RTMP module is not installed (make setup: libnginx-mod-rtmp)")
    port = free_port()
    (tmp_path / "hls").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_RTMP.format(module=RTMP_MODULE, d=tmp_path, port=port))
    srv = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf)],
                           stderr=subprocess.PIPE, start_new_session=True)
    log = tmp_path / "push.log"
    playlist = tmp_path / "hls" / "cam.m3u8"
    proc = None
    try:
        proc = client(log, "-v", f"rtmp://user:s3cret@127.0.0.1:{port}/live/cam", *SD,
                      "--gps", "none", "-r", "0.5")
        wait_until(playlist.exists, 40, "nginx's HLS playlist", log)
        time.sleep(8.0)
        # A finished copy of the live playlist: ffprobe reads it through, then stops.
        vod = tmp_path / "hls" / "vod.m3u8"
        vod.write_text(playlist.read_text() + "#EXT-X-ENDLIST\n")
        streams = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
             "-of", "compact=p=0", str(vod)], capture_output=True, text=True, timeout=60)
        decoded = probe_frames(vod)
        kill_group(proc)  # Ctrl-C: the push and the ffmpeg it started are gone

        def left() -> list[str]:
            return subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}/live/cam"],
                                  capture_output=True, text=True, check=False).stdout.split()

        wait_until(lambda: not left(), 5, "the push's ffmpeg to exit")
    finally:
        if proc is not None:
            kill_group(proc)
        kill_group(srv, signal.SIGTERM, 5)
    assert "codec_name=h264|width=640|height=480" in streams.stdout, streams
    assert len(decoded) >= 5 * 25, len(decoded)  # several seconds of frames, all decodable
    assert decoded[0]["key_frame"] == "1"
    text = log.read_text(errors="replace")
    assert "rtmp://***@127.0.0.1" in text and "s3cret" not in text, text[-2000:]
    assert "Traceback" not in text


def test_rtsp_push_to_an_ffmpeg_rtsp_receiver(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "rx.ts"
    rx = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_flags", "listen",
                           "-i", f"rtsp://127.0.0.1:{port}/cam", "-c", "copy", "-f", "mpegts",
                           str(out)], stderr=subprocess.PIPE, start_new_session=True)
    log = tmp_path / "push.log"
    proc = None
    try:
        def listening() -> bool:
            return bool(subprocess.run(["ss", "-Hltn", f"sport = :{port}"],
                                       capture_output=True, text=True).stdout.strip())

        wait_until(listening, 10, "the RTSP receiver to listen")
        proc = client(log, "-v", f"rtsp://127.0.0.1:{port}/cam", *SD, "--gps", "none")
        wait_until(lambda: out.exists() and out.stat().st_size > 200_000, 40,
                   "H.264 at the RTSP receiver", log)
        kill_group(proc)
        rx.wait(10)  # the publisher's TEARDOWN ends the receiver's input
    finally:
        if proc is not None:
            kill_group(proc)
        kill_group(rx, signal.SIGTERM, 5)
    decoded = probe_frames(out)
    assert len(decoded) >= 30, len(decoded)
    assert decoded[0]["key_frame"] == "1"
    assert {(f["width"], f["height"]) for f in decoded} == {("640", "480")}
    assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.parametrize("scheme", ["rtmp", "rtsp"])
def test_a_media_server_that_refuses_is_retried_then_given_up(scheme: str,
                                                              tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    log = tmp_path / "push.log"
    proc = client(log, "-v", f"{scheme}://user:s3cret@127.0.0.1:{port}/live/cam", *SD,
                  "--gps", "none", "-r", "0.3", "--max-retries", "2")
    try:
        assert proc.wait(60) == 3
    finally:
        kill_group(proc)
    text = log.read_text(errors="replace")
    warnings = [line for line in text.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "Connection refused" in warnings[0], text  # one line
    assert "giving up" in text and "connected to" not in text, text
    assert "s3cret" not in text and "Traceback" not in text, text
