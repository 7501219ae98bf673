"""Stopping an external program (ffmpeg, Janus) that a child runs: ask, wait, then kill."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, wait_s: float) -> None:
    """SIGTERM `proc` if it still runs, wait up to `wait_s`, then SIGKILL and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(max(wait_s, 5.0))
