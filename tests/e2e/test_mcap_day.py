"""MCAP recordings a team can run all day: split files, keep, flush, full disk, PNG depth.

A .db3 recording whose depth carries its frame number (pixel 0,0 is FRAME_BASE + n) is
played once (--no-loop, --no-align so depth reaches the file untouched), so every depth
message of every file says which frame it is and what it must decode to. The ROS 2 files
are read by `rosbags`' own Humble type store, not by our writer's counterpart.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader
from mcap_protobuf.decoder import DecoderFactory
from rosbags.typesys import Stores, get_typestore

from tests.camera.rs_recording import make_recording, scene_depth
from tests.e2e.test_mcap import watch
from tests.helpers import MjpegReader, Server

W, H, FPS = 320, 240, 15
SECONDS = 17
FRAME_BASE = 1000
ROS2_TOPICS = {"/camera/color": "sensor_msgs/msg/CompressedImage",
               "/camera/depth": "sensor_msgs/msg/CompressedImage",
               "/camera/calibration": "sensor_msgs/msg/CameraInfo",
               "/tf": "tf2_msgs/msg/TFMessage"}
TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)


def depth_of(n: int) -> np.ndarray:
    """Frame n's depth (mm): the scene, a block that changes with n, n itself at (0, 0)."""
    d = scene_depth(W, H)
    d[20:60, 20:60] = 500 + 7 * n
    d[0, 0] = FRAME_BASE + n
    return d


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("day") / "numbered.db3"
    make_recording(path, W, H, FPS, frames=SECONDS * FPS, depth_fn=depth_of, baseline=0.0)
    return path


def record_until(rec: Path, out: Path, text: str, seconds: float, *extra: str) -> Server:
    """Play `rec` once into --record-mcap `out` (PNG depth) until the log says `text`,
    then stop the server with SIGINT; the stopped server (for its log)."""
    srv = Server("--source", str(rec), "--no-loop", "--no-align", "--width", str(W),
                 "--height", str(H), "--record-mcap", str(out), "--record-mcap-depth", "png",
                 *extra)
    try:
        srv.wait_ready()
        wait_for(srv, text, seconds)
        assert srv.stop(signal.SIGINT, timeout=15) == 0
    finally:
        srv.kill()
    return srv


def wait_for(srv: Server, text: str, seconds: float) -> None:
    """Wait (bounded) until the server's log says `text`; fail with the log if it does not."""
    deadline = time.monotonic() + seconds
    while text not in srv.log():
        assert srv.proc.poll() is None, srv.log()
        assert time.monotonic() < deadline, f"no {text!r} within {seconds} s:\n{srv.log()}"
        time.sleep(0.2)


def series(out: Path) -> list[Path]:
    """The files of a split recording, in index order."""
    found = {int(m.group(1)): p for p in out.parent.iterdir()
             if (m := re.fullmatch(re.escape(out.stem) + r"_(\d+)\.mcap", p.name))}
    return [found[i] for i in sorted(found)]


def png_depth(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint16 and img.shape == (H, W)
    return img


def check_depth(img: np.ndarray) -> int:
    """Frame number of a decoded depth image, which must equal that frame to the unit."""
    n = int(img[0, 0]) - FRAME_BASE
    assert 0 <= n < SECONDS * FPS
    assert np.array_equal(img, depth_of(n)), f"frame {n}: PNG depth is not exact"
    return n


def read_ros2(path: Path) -> tuple[dict, dict[str, dict[str, str]], list[int], list[str]]:
    """Schemas, metadata, depth frame numbers and topics (in write order) of one file;
    every message is deserialized by rosbags' Humble type store."""
    with path.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None, f"{path.name} was not finalized"
        schemas = {c.topic: summary.schemas[c.schema_id].name
                   for c in summary.channels.values()}
        meta = {m.name: m.metadata for m in reader.iter_metadata()}
        frames, topics = [], []
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            msg = TYPESTORE.deserialize_cdr(message.data, schema.name)
            topics.append(channel.topic)
            if channel.topic == "/camera/depth":
                assert msg.format == "16UC1; compressedDepth png"
                data = bytes(msg.data)
                assert data[:12] == bytes(12), "ConfigHeader: INV_DEPTH and zero params"
                frames.append(check_depth(png_depth(data[12:])))
    return schemas, meta, frames, topics


def test_split_ros2_png_files_each_stand_alone_and_lose_no_frame(recording: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "run.mcap"
    # Until the recording has ended (the source is lost and the recorder flushes).
    record_until(recording, out, "MCAP chunks flushed", SECONDS + 30,
                 "--record-mcap-profile", "ros2", "--record-mcap-split-duration", "5s")
    files = series(out)
    assert not out.exists(), "with a split the path given is only the series' name"
    assert len(files) >= 3, f"{len(files)} files from a {SECONDS} s run split every 5 s"
    assert [p.name for p in files] == [f"run_{i}.mcap" for i in range(len(files))]
    frames: list[int] = []
    runs, missed, spans = set(), 0, []
    for i, path in enumerate(files):
        schemas, meta, depth, topics = read_ros2(path)
        assert schemas == ROS2_TOPICS, path.name
        assert set(topics) == set(ROS2_TOPICS), path.name
        if i:  # a new file opens with the calibration and /tf, before any frame
            assert set(topics[:2]) == {"/camera/calibration", "/tf"}, topics[:4]
        rec, cam, account = meta["recording"], meta["camera"], meta["frames"]
        assert rec["file_index"] == str(i) and '"record_mcap_depth": "png"' in rec["options"]
        runs.add(rec["run_id"])
        assert cam["kind"] and '"intrinsics"' in cam["model"]
        assert int(account["depth_messages"]) == len(depth), path.name
        missed += int(account["depth_missed"])
        spans.append((int(account["depth_first_frame"]), int(account["depth_last_frame"])))
        frames += depth
    assert len(runs) == 1, "every file of a run carries the same run id"
    # No repeat and no reordering across the boundaries...
    assert frames == sorted(set(frames)), "a depth frame is repeated or out of order"
    # ... and none lost: every capture frame number from the first to the last is either
    # in a file or counted as missed, and the files' spans follow one another.
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    assert spans[-1][1] - spans[0][0] + 1 == len(frames) + missed
    assert missed <= 0.15 * len(frames), f"{missed} of {len(frames)} depth frames missed"
    # The files cover the recording from its start to its end (frame numbers of its own).
    assert frames[0] <= 3 * FPS and frames[-1] >= (SECONDS - 1) * FPS, (frames[0], frames[-1])


def test_keep_leaves_the_newest_files_with_exact_foxglove_png(recording: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "kept.mcap"
    srv = record_until(recording, out, "recording to " + str(tmp_path / "kept_3.mcap"), 30,
                       "--record-mcap-split-duration", "2s", "--record-mcap-keep", "2")
    opened = [int(i) for i in re.findall(r"recording to \S*kept_(\d+)\.mcap", srv.log())]
    newest = max(opened)
    files = series(out)
    assert [p.name for p in files] == [f"kept_{newest - 1}.mcap", f"kept_{newest}.mcap"]
    deleted = re.findall(r"deleted \S*kept_(\d+)\.mcap", srv.log())
    assert sorted(int(i) for i in deleted) == list(range(newest - 1))
    frames = []
    for path in files:
        with path.open("rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            assert reader.get_summary() is not None
            for _, _, _, msg in reader.iter_decoded_messages(topics=["/camera/depth"]):
                assert msg.format == "png"
                frames.append(check_depth(png_depth(bytes(msg.data))))
    assert len(frames) > FPS and frames == sorted(set(frames))


def test_sigkill_leaves_the_current_file_readable_to_the_last_second(tmp_path: Path) -> None:
    """No `mcap recover`: the stream reader reads every whole chunk of the cut file."""
    out = tmp_path / "cut.mcap"
    srv = Server("--width", "640", "--height", "480", "--fps", str(FPS), "--record-mcap",
                 str(out), "--record-mcap-split-duration", "3s")
    try:
        srv.wait_ready()
        wait_for(srv, "recording to " + str(tmp_path / "cut_1.mcap"), 30)
        rate = watch(srv, 2.5)
        killed = time.time()
        srv.kill()  # SIGKILL to the whole process group: nothing is finalized
    finally:
        srv.kill()
    assert rate > FPS / 3, f"capture ran at {rate:.1f} fps: the machine is overloaded"
    current = series(out)[-1]
    assert current.name == "cut_1.mcap"
    last, messages = 0, 0
    with current.open("rb") as f, contextlib.suppress(Exception):
        # The cut tail (a partial chunk, no summary or footer) ends the stream badly.
        for record in StreamReader(f).records:
            if type(record).__name__ == "Message":
                last = max(last, record.log_time)  # type: ignore[attr-defined]
                messages += 1
    assert messages >= rate, f"only {messages} messages readable"
    assert last / 1e9 >= killed - 1.5, f"the file ends {killed - last / 1e9:.2f} s before the kill"


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"cannot mount a {size} tmpfs (needs root): {done.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_stops_the_recording_finalized_and_the_server_serves(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "16m") as disk:
        out = disk / "full.mcap"
        srv = Server("--width", "640", "--height", "480", "--fps", str(FPS),
                     "--record-mcap", str(out))
        try:
            st = srv.wait_ready()
            assert st["mcap"]["recording"] and st["mcap"]["file_index"] == 0
            wait_for(srv, "disk full", 60)
            pid = st["mcap"]["pid"]
            watch(srv, 2.0)  # the child stays, idle, and is not restarted
            now = srv.status()["mcap"]
            assert now["pid"] == pid and now["restarts"] == 0, srv.log()
            assert not now["recording"]
            reader = MjpegReader(srv.port, "/color")
            try:
                headers, jpeg = reader.next_part()
            finally:
                reader.close()
            assert jpeg[:2] == b"\xff\xd8"
            assert srv.stop(signal.SIGINT, timeout=15) == 0
        finally:
            srv.kill()
        lines = [ln for ln in srv.log().splitlines() if "disk full" in ln]
        assert len(lines) == 1 and "finalized" in lines[0], lines
        assert "Traceback" not in srv.log()
        with out.open("rb") as f:
            reader_ = make_reader(f)
            summary = reader_.get_summary()
            assert summary is not None, "the last file was not finalized"
            meta = {m.name: m.metadata for m in reader_.iter_metadata()}
        assert summary.statistics.message_count > FPS
        assert int(meta["frames"]["depth_messages"]) == summary.statistics.channel_message_counts[
            next(c.id for c in summary.channels.values() if c.topic == "/camera/depth")]
