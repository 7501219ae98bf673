"""JpegRecorder writes playable .mkv/.avi files holding the very JPEGs, timed as recorded."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from turbojpeg import TurboJPEG

from media import recorder as recorder_mod
from media.recorder import JpegRecorder, jpeg_size, save_snapshot
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
FPS = 12.0
W, H = 320, 240


@pytest.fixture(autouse=True)
def _ffprobe() -> None:
    """Every test here reads its file back with ffprobe, which make setup installs."""
    require("ffprobe")


_tj = TurboJPEG()

def frame(k: int, w: int = W, h: int = H) -> bytes:
    """A distinct, reproducible JPEG for frame k (also used by the child processes)."""
    img = np.random.default_rng(k).integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
    cv2.putText(img, str(k), (20, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 4)
    return _tj.encode(img, quality=85)


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,codec_name,width,height",
         "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=30, check=True)
    info = json.loads(out.stdout)
    stream = info["streams"][0]
    return {"codec": stream["codec_name"], "width": stream["width"],
            "height": stream["height"], "frames": int(stream["nb_read_frames"]),
            "duration": float(info["format"]["duration"])}


def packet_times(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=30, check=True)
    return [float(line) for line in out.stdout.split()]


def extract(path: Path, outdir: Path) -> list[bytes]:
    outdir.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-c", "copy",
                    "-f", "image2", str(outdir / "f%04d.jpg")], check=True, timeout=30)
    return [p.read_bytes() for p in sorted(outdir.iterdir())]


def wait_for_room(rec: JpegRecorder, queued: int) -> None:
    """Until the recorder's queue has room for one more frame.

    A recorder drops a frame only when its queue is full (ffmpeg starved for ~5 s on a
    loaded machine); a writer that never overfills it must see every frame written.
    """
    deadline = time.monotonic() + 60
    while queued - rec.frames_written >= recorder_mod.QUEUE_FRAMES - 1:
        assert time.monotonic() < deadline, "ffmpeg took no frame for 60 s"
        time.sleep(0.005)


def record_realtime(path: Path, seconds: float, fps: float) -> list[tuple[bytes, float]]:
    """Write frames at `fps` with real sleeps; returns (jpeg, timestamp) as written."""
    sent = []
    with JpegRecorder(str(path), fps_hint=fps) as rec:
        t0 = time.time()
        k = 0
        while time.time() - t0 < seconds:
            wait_for_room(rec, len(sent))
            jpeg = frame(k)
            ts = time.time()
            assert rec.write(jpeg, ts)
            sent.append((jpeg, ts))
            k += 1
            time.sleep(max(0.0, t0 + k / fps - time.time()))
    assert rec.returncode == 0
    assert rec.frames_written == len(sent) and rec.frames_dropped == 0
    return sent


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_realtime_recording_plays_with_the_same_jpegs_and_timing(tmp_path: Path,
                                                                 ext: str) -> None:
    path = tmp_path / f"rec.{ext}"
    sent = record_realtime(path, 3.0, FPS)
    n = len(sent)
    assert n >= 30
    info = probe(path)
    assert info["codec"] == "mjpeg"
    assert (info["width"], info["height"]) == (W, H)
    assert info["frames"] == n
    span = sent[-1][1] - sent[0][1]
    assert span - 0.05 <= info["duration"] <= span + 2 / FPS + 0.05

    times = packet_times(path)
    assert len(times) == n
    tol = 0.0015 if ext == "mkv" else 1.5 / FPS
    for (_, ts), pts in zip(sent, times, strict=True):
        assert abs(pts - (ts - sent[0][1])) <= tol

    assert extract(path, tmp_path / "frames") == [jpeg for jpeg, _ in sent]


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_explicit_timestamps_survive_gaps(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"gap.{ext}"
    stamps = [100.0 + k / 10 for k in range(10)] + [102.0 + k / 10 for k in range(10)]
    with JpegRecorder(str(path), fps_hint=10) as rec:
        for k, ts in enumerate(stamps):
            rec.write(frame(k), ts)
    info = probe(path)
    assert info["frames"] == 20
    assert abs(info["duration"] - 2.9) <= 0.1 + 0.05
    times = packet_times(path)
    assert times == pytest.approx([ts - 100.0 for ts in stamps], abs=0.002)


CHILD = """
import json, signal, sys, time
# A Python started from a terminal turns Ctrl-C into KeyboardInterrupt; one started by a
# shell without job control inherits SIGINT ignored, so ask for the terminal's behaviour.
signal.signal(signal.SIGINT, signal.default_int_handler)
from media.recorder import QUEUE_FRAMES, JpegRecorder
from tests.media.test_recorder import frame
path, mode = sys.argv[1], sys.argv[2]
rec = JpegRecorder(path, fps_hint=12)
print("ffmpeg", rec._proc.pid, flush=True)
n = 0
try:
    t0 = time.time()
    while True:
        while n - rec.frames_written >= QUEUE_FRAMES - 1:  # never overfill its queue
            time.sleep(0.005)
        rec.write(frame(n), time.time())
        n += 1
        if mode == "kill":
            while rec.frames_written < n:
                time.sleep(0.002)
        print("written", n, flush=True)
        time.sleep(max(0.0, t0 + n / 12 - time.time()))
except KeyboardInterrupt:
    pass
finally:
    rec.close()
    print(json.dumps({"sent": n, "written": rec.frames_written,
                      "dropped": rec.frames_dropped, "rc": rec.returncode}), flush=True)
"""


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie awaiting its reaper counts as finished)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture
def child_runner() -> Iterator[list[tuple[subprocess.Popen, list[int]]]]:
    """Started recorder children and their ffmpeg pids, all killed at teardown."""
    started: list[tuple[subprocess.Popen, list[int]]] = []
    yield started
    for proc, ffmpeg_pids in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pid in ffmpeg_pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def start_child(runner: list, path: Path, mode: str) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), str(path), mode],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    pids: list[int] = []
    runner.append((proc, pids))
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[0] == "ffmpeg", line
    pids.append(int(line[1]))
    return proc, pids[0]


def read_until_written(proc: subprocess.Popen, count: int) -> int:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline().split()
        assert line and line[0] == "written", line
        if int(line[1]) >= count:
            return int(line[1])


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_ctrl_c_on_the_terminal_leaves_a_complete_file(tmp_path: Path, ext: str,
                                                       child_runner: list) -> None:
    path = tmp_path / f"int.{ext}"
    proc, ffmpeg_pid = start_child(child_runner, path, "int")
    read_until_written(proc, 15)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to its process group
    out, _ = proc.communicate(timeout=20)
    stats = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0
    assert stats["rc"] == 0 and stats["dropped"] == 0
    assert stats["written"] == stats["sent"] >= 15
    assert not _alive(ffmpeg_pid)
    info = probe(path)
    assert info["codec"] == "mjpeg" and info["frames"] == stats["sent"]
    assert abs(info["duration"] - (stats["sent"] - 1) / 12) <= 0.25
    frames = extract(path, tmp_path / "frames")
    assert frames == [frame(k) for k in range(stats["sent"])]


def test_killed_recorder_still_leaves_a_complete_file(tmp_path: Path,
                                                      child_runner: list) -> None:
    path = tmp_path / "killed.mkv"
    proc, ffmpeg_pid = start_child(child_runner, path, "kill")
    seen = read_until_written(proc, 12)
    proc.kill()
    proc.wait(10)
    # The child says "written n" once ffmpeg has taken frame n, and it went on while we
    # read: the last such line before the kill is what the file must hold.
    assert proc.stdout is not None
    seen = max([seen, *(int(line.split()[1]) for line in proc.stdout
                        if line.startswith("written"))])
    deadline = time.monotonic() + 15
    while _alive(ffmpeg_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(ffmpeg_pid), "ffmpeg did not finish after its writer died"
    info = probe(path)
    assert seen <= info["frames"] <= seen + 2
    frames = extract(path, tmp_path / "frames")
    assert frames == [frame(k) for k in range(len(frames))]


def test_write_never_blocks_when_ffmpeg_stalls(tmp_path: Path) -> None:
    path = tmp_path / "stall.mkv"
    rec = JpegRecorder(str(path), fps_hint=30)
    pid = rec._proc.pid
    jpegs = [frame(k) for k in range(4)]
    os.kill(pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for k in range(200):
            t = time.perf_counter()
            rec.write(jpegs[k % 4], 50.0 + k / 30)
            slowest = max(slowest, time.perf_counter() - t)
        assert slowest < 0.05
        assert rec.frames_dropped >= 200 - recorder_mod.QUEUE_FRAMES - 10
    finally:
        os.kill(pid, signal.SIGCONT)
    rec.close()
    assert rec.returncode == 0
    assert rec.frames_written + rec.frames_dropped == 200
    assert probe(path)["frames"] == rec.frames_written > 0


def test_close_gives_up_on_a_hung_ffmpeg(tmp_path: Path) -> None:
    rec = JpegRecorder(str(tmp_path / "hung.mkv"))
    pid = rec._proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for k in range(100):
            rec.write(frame(k % 3), k / 30)
        t = time.monotonic()
        rec.close(timeout=0.5)
        assert time.monotonic() - t < 3.0
        assert rec.returncode == -signal.SIGKILL
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_frames_of_another_size_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sizes.mkv"
    with JpegRecorder(str(path)) as rec:
        assert rec.write(frame(0), 1.0)
        assert rec.write(frame(1, 160, 120), 1.1)
        assert rec.write(frame(2), 1.2)
        assert rec.write(b"not a jpeg", 1.3)
    assert (rec.frames_written, rec.frames_dropped) == (2, 2)
    info = probe(path)
    assert (info["frames"], info["width"], info["height"]) == (2, W, H)


def test_close_is_idempotent_and_late_writes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.avi"
    rec = JpegRecorder(str(path), fps_hint=10)
    rec.write(frame(0), 0.0)
    rec.close()
    rec.close()
    assert not rec.write(frame(1), 0.1)
    assert probe(path)["frames"] == 1


def test_no_frames_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mkv"
    with JpegRecorder(str(path)):
        pass
    assert not path.exists()


def test_bad_paths_and_missing_ffmpeg_fail_clearly(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"\.mkv or \.avi"):
        JpegRecorder(str(tmp_path / "x.mp4"))
    with pytest.raises(ValueError, match="does not exist"):
        JpegRecorder(str(tmp_path / "missing" / "x.mkv"))
    with pytest.raises(ValueError, match="not writable"):
        JpegRecorder("/proc/x.mkv")
    monkeypatch.setattr(recorder_mod.shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        JpegRecorder(str(tmp_path / "x.mkv"))


def test_jpeg_size_reads_baseline_and_progressive_headers() -> None:
    assert jpeg_size(frame(0)) == (W, H)
    img = np.zeros((37, 53, 3), np.uint8)
    assert jpeg_size(cv2.imencode(".jpg", img)[1].tobytes()) == (53, 37)
    buf = io.BytesIO()
    Image.new("RGB", (71, 29)).save(buf, "JPEG", progressive=True)
    assert jpeg_size(buf.getvalue()) == (71, 29)
    for bad in (b"", b"\xff\xd8", b"GIF89a", b"\xff\xd8\xff\xda\x00\x02"):
        with pytest.raises(ValueError):
            jpeg_size(bad)


def test_save_snapshot_replaces_atomically(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snap.jpg"
    save_snapshot(str(path), b"first")
    save_snapshot(str(path), frame(0))
    assert path.read_bytes() == frame(0)
    assert os.listdir(tmp_path) == ["snap.jpg"]

    def fail(_src: str, _dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(recorder_mod.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_snapshot(str(path), b"broken")
    assert path.read_bytes() == frame(0)
    assert os.listdir(tmp_path) == ["snap.jpg"]
