"""The child skeleton's stop deadline: a child whose own stop hangs is still ended."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.child import OWN_STOP_DEADLINE_S

# Arms the stop handlers, says so, then ignores the stop flag: a stop that never finishes.
# At each request it prints the instant (system-wide monotonic clock) its timer will fire.
HANGING_CHILD = """
import signal, threading, time
from pipeline.child import install_stop_handlers
stop = threading.Event()
install_stop_handlers(stop)
print("ready", flush=True)
while True:
    time.sleep(0.05)
    if stop.is_set():
        stop.clear()
        fires_at = signal.getitimer(signal.ITIMER_REAL)[0] + time.monotonic()
        print(f"stopping {time.monotonic()} {fires_at}", flush=True)
"""

ROOT = Path(__file__).resolve().parents[2]
HANG_LIMIT_S = 60.0
"""Only against a hang: a child the deadline failed to end would run forever."""


def _start() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HANGING_CHILD], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_a_child_whose_stop_hangs_is_ended_by_the_kernel_at_its_deadline() -> None:
    proc = _start()
    try:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(HANG_LIMIT_S)
        elapsed = time.monotonic() - t0
        assert code == -signal.SIGALRM
        assert elapsed >= OWN_STOP_DEADLINE_S * 0.95, elapsed
    finally:
        proc.kill()
        proc.wait()


def _second_request(proc: subprocess.Popen[str]) -> list[str]:
    """Ask twice, half a deadline apart; the child's two lines (the second empty when the
    deadline fired before the child got to the second request)."""
    assert proc.stdout is not None
    proc.send_signal(signal.SIGTERM)
    first = proc.stdout.readline().split()
    while time.monotonic() - float(first[1]) < OWN_STOP_DEADLINE_S / 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    return [first, proc.stdout.readline().split()]


def test_a_second_stop_request_does_not_push_the_deadline_back() -> None:
    for _ in range(3):  # a starved child may see only the first request: ask again
        proc = _start()
        try:
            first, second = _second_request(proc)
            assert proc.wait(HANG_LIMIT_S) == -signal.SIGALRM
        finally:
            proc.kill()
            proc.wait()
        if second:
            break
    assert second, "the child never got to a second request before its deadline"
    first_at, fires_at = map(float, first[1:])
    second_at, fires_again_at = map(float, second[1:])
    # Re-armed, the instant would have moved by the gap between the two requests.
    assert abs(fires_again_at - fires_at) < (second_at - first_at) / 2, (first, second)
