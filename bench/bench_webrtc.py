"""MJPEG vs H.264 over WebRTC: bytes per viewer at matched quality, CPU, latency, Janus load.

Offline, on the same synthetic 1280x720 frames: JPEG (libjpeg-turbo, several qualities)
and H.264 (PyAV's libx264 as the H.264 stage runs it, and the system ffmpeg's libx264
fed raw frames through a pipe), each decoded again and compared with its source frame
by SSIM; CPU per frame of each H.264 path. Live, against the real server with --webrtc
and headless Chromium: capture-to-display latency read from the stamp in the video
frames, bytes per second per viewer for both players, and the CPU of the H.264 child and
of Janus with 1 and with 10 viewers.

    .venv/bin/python bench/bench_webrtc.py --frames 90 --seconds 10
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_args  # noqa: E402
from camera.synthetic import SyntheticSource  # noqa: E402
from media.h264 import H264Encoder  # noqa: E402
from media.jpeg import JpegCodec, pick_backend  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
W, H, FPS = 1280, 720, 30


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two BGR images on luma (Wang et al., 11x11 Gaussian, sigma 1.5)."""
    x = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32)
    y = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m.mean())


def render(n: int) -> list[np.ndarray]:
    """n synthetic frames, rendered at the real frame pace so motion is as in a run."""
    src = SyntheticSource(W, H, FPS)
    src.open()
    out = []
    for _ in range(n):
        t = time.monotonic()
        out.append(src.read(1.0).color)  # type: ignore[union-attr]
        time.sleep(max(0.0, 1 / FPS - (time.monotonic() - t)))
    return out


def decode_h264(stream: bytes) -> list[np.ndarray]:
    import av  # noqa: PLC0415

    with av.open(io.BytesIO(stream), format="h264") as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def bench_jpeg(frames: list[np.ndarray], quality: int) -> dict[str, float]:
    codec = JpegCodec(pick_backend("auto"))
    sizes, scores, cpu = [], [], 0.0
    for f in frames:
        t = time.process_time()
        jpg = codec.encode(f, quality, "420")
        cpu += time.process_time() - t
        sizes.append(len(jpg))
        scores.append(ssim(f, cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)))
    return {"bytes_per_s": statistics.mean(sizes) * FPS, "ssim": statistics.mean(scores),
            "cpu_ms": cpu / len(frames) * 1000}


def bench_pyav(frames: list[np.ndarray], bitrate: int, gop: int) -> dict[str, float]:
    enc = H264Encoder(W, H, FPS, bitrate, gop)
    data = bytearray()
    t = time.process_time()
    for f in frames:
        for au in enc.encode(f):
            data += au.data
    cpu = time.process_time() - t
    dec = decode_h264(bytes(data))
    return {"bytes_per_s": len(data) / len(frames) * FPS, "cpu_ms": cpu / len(frames) * 1000,
            "ssim": statistics.mean(ssim(a, b) for a, b in zip(frames, dec, strict=False)),
            "frames": len(dec)}


def bench_ffmpeg_pipe(frames: list[np.ndarray], bitrate: int, gop: int) -> dict[str, float]:
    """The alternative: raw BGR into `ffmpeg -c:v libx264` through a pipe, same settings."""
    kbps = bitrate // 1000
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", "bgr24", "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
           "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-b:v", f"{kbps}k",
           "-threads", "2", "-x264-params",
           f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
           f"vbv-maxrate={kbps}:vbv-bufsize={kbps}:nal-hrd=none:sliced-threads=1",
           "-f", "h264", "-"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.process_time()
    with open(os.devnull, "wb") as _:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        import threading  # noqa: PLC0415

        out = bytearray()
        reader = threading.Thread(target=lambda: out.extend(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        for f in frames:
            proc.stdin.write(f.tobytes())  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()
        reader.join()
    ours = time.process_time() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    dec = decode_h264(bytes(out))
    return {"bytes_per_s": len(out) / len(frames) * FPS,
            "cpu_ms": (child + ours) / len(frames) * 1000,
            "ssim": statistics.mean(ssim(a, b) for a, b in zip(frames, dec, strict=False)),
            "frames": len(dec)}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def live(seconds: float, bitrate: int) -> dict[str, object]:
    from tests.browser import Browser  # noqa: PLC0415
    from tests.helpers import MjpegReader, running  # noqa: PLC0415

    res: dict[str, object] = {}
    with running("--source", "synthetic", "--width", str(W), "--height", str(H),
                 "--fps", str(FPS), "--webrtc", "--h264-bitrate", str(bitrate)) as srv, \
            Browser() as b:
        # MJPEG bytes per viewer: one reader on /color for the same time.
        r = MjpegReader(srv.port, "/color")
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            _, body = r.next_part()
            n += len(body)
        r.close()
        res["mjpeg_bytes_per_s"] = n / (time.monotonic() - t0)
        b.goto(srv.base + "/?player=webrtc")
        stats = "window.depthcam.webrtcStats()"
        b.wait_for(f"{stats}.then(s => s && s.framesDecoded > 60)", timeout=60)
        st = json.load(urllib.request.urlopen(srv.base + "/status"))
        h264_pid, janus_pid = st["h264"]["pid"], st["janus"]["pid"]

        def window(extra: int) -> dict[str, float]:
            s0, t = b.eval(stats), time.monotonic()
            e0 = b.eval("window.depthcam.webrtcExtraFrames()")
            c0 = {p: cpu_s(p) for p in (h264_pid, janus_pid)}
            time.sleep(seconds)
            dt = time.monotonic() - t
            s1 = b.eval(stats)
            e1 = b.eval("window.depthcam.webrtcExtraFrames()")
            c1 = {p: cpu_s(p) for p in (h264_pid, janus_pid)}
            if not s0 or not s1 or s1["framesDecoded"] < s0["framesDecoded"]:
                # The page's viewer reconnected in the window: no byte count from it.
                s0 = s1 = {"bytesReceived": 0, "framesDecoded": 0}
                print("main viewer reconnected:", b.eval("window.depthcam.webrtcState()"),
                      b.console[-3:], flush=True)
            return {"bytes_per_s": (s1["bytesReceived"] - s0["bytesReceived"]) / dt,
                    "fps": (s1["framesDecoded"] - s0["framesDecoded"]) / dt,
                    "extra_fps_each": (e1 - e0) / dt / extra if extra else 0.0,
                    "h264_cpu": (c1[h264_pid] - c0[h264_pid]) / dt,
                    "janus_cpu": (c1[janus_pid] - c0[janus_pid]) / dt,
                    "viewers": json.load(urllib.request.urlopen(
                        srv.base + "/status"))["janus"]["viewers"]}

        lat = b.eval("window.depthcam.webrtcLatency(150)", timeout=60)
        res["latency_ms"] = {"p50": statistics.median(lat) * 1000,
                             "p90": float(np.percentile(lat, 90)) * 1000, "n": len(lat)}
        res["one_viewer"] = window(0)
        print(json.dumps(res, default=float), flush=True)
        b.eval("window.depthcam.webrtcExtraViewers(9)", timeout=60)
        b.wait_for("window.depthcam.webrtcExtraFrames().then(n => n > 9 * 30)", timeout=60)
        res["ten_viewers"] = window(9)
    return res


def main() -> None:
    a = bench_args(__doc__, frames=90, seconds=10.0, bitrate=2_500_000, gop=60,
                   skip_live=False)
    print(f"load average before: {os.getloadavg()}", flush=True)
    frames = render(a.frames)
    out: dict[str, object] = {
        "jpeg": {q: bench_jpeg(frames, q) for q in (80, 90, 93, 95)},
        "pyav_x264": {br: bench_pyav(frames, br, a.gop) for br in (a.bitrate, 4_000_000)},
        "ffmpeg_pipe_x264": bench_ffmpeg_pipe(frames, a.bitrate, a.gop),
    }
    if not a.skip_live:
        out["live"] = live(a.seconds, a.bitrate)
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
