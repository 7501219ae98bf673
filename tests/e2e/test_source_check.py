"""A tcp:// source that cannot work is refused before anything starts."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import PYTHON, ROOT, free_port


@pytest.mark.parametrize(("source", "reason"), [
    ("tcp://nohost.invalid:5000", "cannot resolve 'nohost.invalid'"),
    ("tcp://192.0.2.1:5000", "'192.0.2.1' is not an address of this machine"),
])
def test_a_tcp_source_we_cannot_listen_on_is_one_line_and_exit_2(source: str,
                                                                 reason: str) -> None:
    res = subprocess.run(
        [PYTHON, str(ROOT / "app_mp.py"), "--host", "127.0.0.1", "--port", str(free_port()),
         "--source", source, "--log-level", "debug"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2
    lines = (res.stdout + res.stderr).splitlines()
    # one line: no encoder pick, no child, no "serving on" (so nothing was bound)
    assert lines == [f"app_mp.py: error: --source {source}: {lines[0].split(': ', 3)[3]}"]
    assert reason in lines[0]
