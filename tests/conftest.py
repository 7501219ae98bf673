"""Shared fixtures, the unit/e2e markers, and the order the modules run in."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# The only reasons a test may skip: what `make setup` cannot install on a fresh machine.
# .ci/run fails the run on a skip whose reason starts with anything else.
SKIP_NO_CAMERA = "no camera:"
SKIP_NO_GPU = "no GPU:"
SKIP_PLATFORM = "platform:"
ALLOWED_SKIPS = (SKIP_NO_CAMERA, SKIP_NO_GPU, SKIP_PLATFORM)

# The modules that take longest, heaviest first (seconds of test time in one run with
# a busy loop beside on a loaded 2-core machine, from the JUnit report): the workers
# start these first, so a long one does not end up last on one worker while the other
# has nothing left to do. A module not listed counts as light; list a new heavy one.
HEAVY_MODULES = (
    "e2e/test_display.py",  # 146
    "e2e/test_faults.py",  # 140
    "e2e/test_webrtc.py",  # 137
    "e2e/test_push_h264.py",  # 119
    "push/test_video_push.py",  # 89
    "e2e/test_lifecycle.py",  # 86
    "e2e/test_mcap_day.py",  # 74
    "e2e/test_cameras.py",  # 70
    "e2e/test_push_shaped.py",  # 67
    "e2e/test_depth.py",  # 64
    "e2e/test_foxglove.py",  # 52
    "e2e/test_security.py",  # 46
    "e2e/test_imu.py",  # 36
    "e2e/test_mcap.py",  # 32
    "push/test_gps.py",  # 26
    "e2e/test_flood.py",  # 23
    "e2e/test_ingest.py",  # 23
    "e2e/test_options.py",  # 19
    "e2e/test_depth_video.py",  # 18
    "e2e/test_streams.py",  # 18
    "media/test_recorder.py",  # 18
    "e2e/test_nginx.py",  # 18
    "e2e/test_recording_source.py",  # 17
    "e2e/test_record.py",  # 17
)


def require(tool: str) -> str:
    """Path of a program the test needs; the suite's set-up installs it, so absence fails."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (make setup installs it)")
    return path


def _module(item: pytest.Item) -> str:
    return Path(item.path).resolve().relative_to(TESTS).as_posix()


def _weight(item: pytest.Item) -> int:
    mod = _module(item)
    return HEAVY_MODULES.index(mod) if mod in HEAVY_MODULES else len(HEAVY_MODULES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test `unit` or `e2e` by its folder, and put the heavy modules first.

    `make test` runs each module on one xdist worker (--dist loadfile, so a module's
    shared server starts once) in this order (--no-loadscope-reorder): the long modules
    start first and the short ones fill in around them. Within a module the order is
    kept: some modules' tests build on the ones before.
    """
    for item in items:
        item.add_marker(pytest.mark.e2e if _module(item).startswith("e2e/") else pytest.mark.unit)
    items.sort(key=_weight)  # stable: the order inside each module stays


def needs_pyrealsense2() -> None:
    """pyrealsense2 ships wheels for x86_64 only, and make setup installs it there: its
    absence fails the test on x86_64 and skips it elsewhere."""
    try:
        import pyrealsense2  # noqa: F401, PLC0415
    except ImportError:
        machine = platform.machine()
        if machine in ("x86_64", "AMD64"):
            pytest.fail("pyrealsense2 is not installed (make setup installs it on x86_64)")
        pytest.skip(f"{SKIP_PLATFORM} pyrealsense2 has no wheel for {machine}")
