"""Process lifecycle: clean exits, restarts that keep clients connected, bad options."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.helpers import (
    STOP_DEADLINE_S,
    STOP_ESCALATED,
    MjpegReader,
    Server,
    children_of,
    describe_pid,
    pid_alive,
    run_cli,
    running,
    shm_segments,
)

SMALL = ("--width", "640", "--height", "480")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_exits_clean_within_the_stop_deadline(sig: int) -> None:
    srv = Server(*SMALL)
    try:
        srv.wait_ready()
        r = MjpegReader(srv.port, "/color")
        r.next_part()
        kids = children_of(srv.pid)
        assert len(kids) >= 3
        t0 = time.monotonic()
        code = srv.stop(sig, timeout=2 * STOP_DEADLINE_S)
        elapsed = time.monotonic() - t0
        r.close()
        assert code == 0
        log = srv.log()
        assert STOP_ESCALATED not in log, log
        assert elapsed < STOP_DEADLINE_S, elapsed
        assert not [p for p in kids if pid_alive(p)], "orphan processes left"
        assert shm_segments(srv.pid) == []
        assert "Traceback" not in log
    finally:
        srv.kill()


def test_a_stop_while_the_web_server_starts_exits_clean() -> None:
    """SIGTERM just as the web process opens its server (it yields there, looking up its
    own name): the run still ends with exit 0 and no traceback. Ten tries, spread over
    the first milliseconds, since the moment cannot be hit exactly from outside."""
    for attempt in range(10):
        srv = Server(*SMALL)
        try:
            deadline = time.monotonic() + 30
            while "open files:" not in srv.log():  # the web's last line before its server
                assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log()
                time.sleep(0.001)
            time.sleep(0.002 * (attempt % 5))
            code = srv.stop(signal.SIGTERM, timeout=10)
            log = srv.log()
            assert code == 0 and "Traceback" not in log, (attempt, log)
        finally:
            srv.kill()


@pytest.mark.parametrize("role", ["encoder", "capture"])
def test_killed_child_is_restarted_and_the_same_connection_resumes(role: str) -> None:
    with running(*SMALL) as srv:
        r = MjpegReader(srv.port, "/color", timeout=10)
        try:
            for _ in range(5):
                r.next_part()
            victim = srv.status()["pids"][role]
            assert victim in children_of(srv.pid)
            deadline = srv.restart_deadline()
            os.kill(victim, signal.SIGKILL)
            killed_at = time.time()
            # Frames captured after the kill must arrive on this same connection, within
            # the supervisor's backoff plus a child's start.
            while True:
                headers, body = r.next_part()
                assert time.time() - killed_at < deadline, f"no fresh frame in {deadline:.1f} s"
                if float(headers["x-timestamp"]) > killed_at + 0.05:
                    break
            st = srv.status()
            assert st["restarts"][role] == 1
        finally:
            r.close()
        log = srv.log()
        assert log.count(f"{role} process died") == 1
        assert "Traceback" not in log


def test_killed_main_process_takes_children_and_next_start_cleans_up() -> None:
    srv = Server(*SMALL)
    try:
        srv.wait_ready()
        kids = [p for p in children_of(srv.pid)]
        os.kill(srv.pid, signal.SIGKILL)
        srv.proc.wait(5)
        # Each child gets SIGTERM from the kernel (parent-death signal) and stops as at a
        # clean stop, or is ended by the deadline it arms with the kernel as it starts to.
        deadline = time.monotonic() + srv.orphan_deadline()
        while left := [p for p in kids if pid_alive(p)]:
            assert time.monotonic() < deadline, (
                "children outlived the main process: " + "; ".join(map(describe_pid, left)))
            time.sleep(0.1)
        # Give the resource tracker a moment; then a new start must remove anything left.
        with running(*SMALL, port=srv.port) as again:
            assert again.status()["source_ok"]
        assert shm_segments(srv.pid) == []
    finally:
        srv.kill()


@pytest.mark.parametrize("args", [
    ("--width", "abc"), ("--fps", "0"), ("--quality", "101"), ("--port", "70000"),
    ("--depth-mode", "rainbow"), ("--depth-min", "5", "--depth-max", "1"),
    ("--source", "/nonexistent/file.bag"), ("--source", "tcp://host:notaport"),
    ("--source", "nonsense"), ("--log-level", "loud"), ("--host", "not a host"),
])
def test_bad_options_are_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    res = run_cli(*args)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "error" in lines[0]


def test_help_explains_each_option() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    for opt in ("--source", "--width", "--height", "--fps", "--quality", "--depth-mode",
                "--depth-min", "--depth-max", "--host", "--port", "--log-level"):
        assert opt in res.stdout


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_cli("--host", "127.0.0.1", "--port", str(port))
    assert res.returncode == 3
    assert "cannot listen on 127.0.0.1" in res.stderr
    assert "Traceback" not in res.stderr
