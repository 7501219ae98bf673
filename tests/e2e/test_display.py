"""--display: a real OpenCV window on a virtual X screen (Xvfb), seen and typed into by X clients.

The window is found with xdotool, grabbed with xwd, typed into through XTEST and closed
with the window manager's WM_DELETE_WINDOW message; the server is read over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import supervisor
from sinks.display import (
    BLANK_READ_EVERY_S,
    BLANK_READS,
    DRAWN_CHECK_AFTER_S,
    HUNG_AFTER_S,
    REOPEN_AT_MOST,
    drawn,
    grid,
    sample,
    tile,
)
from tests.browser import Browser
from tests.conftest import require
from tests.helpers import (
    RATE_SHARE,
    STOP_DEADLINE_S,
    MjpegReader,
    Server,
    children_of,
    colourfulness,
    pid_alive,
    post_filters,
    run_cli,
    running,
    shm_segments,
)
from tests.xserver import Cover, Xvfb

W, H = 640, 480
TITLE = r"^camera \(q quits"


@pytest.fixture(scope="module")
def xvfb() -> Iterator[Xvfb]:
    for tool in ("Xvfb", "xdotool", "xwd"):
        require(tool)
    x = Xvfb(1600, 1200)
    try:
        yield x
    finally:
        x.stop()


class Window:
    """The server's window on a screen, looked up by title at every use.

    The supervisor replaces a display process whose GUI hangs, and the new window has a
    new id: a test follows the window, as a user's eyes would.
    """

    def __init__(self, xvfb: Xvfb, srv: Server, title: str = TITLE) -> None:
        self.xvfb, self.srv, self.title = xvfb, srv, title

    def id(self) -> int:
        return self.xvfb.find_window(self.title)

    def grab(self) -> np.ndarray:
        for _ in range(3):  # it may go between the look-up and the grab (a restart)
            with contextlib.suppress(RuntimeError):
                return self.xvfb.grab(self.id())
        return self.xvfb.grab(self.id())

    def key(self, key: str) -> None:
        self.xvfb.key(self.id(), key)


def wait_log(srv: Server, text: str, timeout: float = 30.0) -> None:
    """Wait (bounded) until the server has logged `text`."""
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{srv.log()[-3000:]}"
        time.sleep(0.1)


@contextlib.contextmanager
def displayed(xvfb: Xvfb, *args: str) -> Iterator[tuple[Server, Window]]:
    """A server with --display on the virtual screen, and its window once it shows frames."""
    with running("--display", "--width", str(W), "--height", str(H), *args,
                 env=xvfb.env) as srv:
        window = Window(xvfb, srv)
        wait_grab(window, lambda g: g.shape == (H, 2 * W, 3) and colourfulness(g[:, :W]) > 20)
        # A window Qt left blank is reopened within seconds of opening; one that passed
        # its own check stays.
        wait_log(srv, "the window shows the stream", timeout=20)
        yield srv, window


@pytest.fixture(scope="module")
def shown(xvfb: Xvfb) -> Iterator[tuple[Server, Window]]:
    with displayed(xvfb) as got:
        yield got


def wait_grab(window: Window, pred: Callable[[np.ndarray], bool],
              timeout: float = 15.0) -> np.ndarray:
    """Grab the window until `pred` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        img = window.grab()
        if pred(img):
            return img
        assert time.monotonic() < deadline, (
            f"the window never showed it (last {img.shape}, colourfulness "
            f"{colourfulness(img):.1f}); log:\n{window.srv.log()[-3000:]}")
        time.sleep(0.05)


def filters(srv: Server) -> list[str]:
    code, _, body = srv.get("/filters")
    assert code == 200
    return json.loads(body)["active"]


def snapshot(srv: Server, stream: str) -> np.ndarray:
    code, _, body = srv.get(f"/{stream}.jpg")
    assert code == 200
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_window_shows_the_live_stream_with_depth_beside(xvfb: Xvfb, shown) -> None:  # noqa: ANN001
    srv, window = shown
    first = wait_grab(window, lambda g: g.shape == (H, 2 * W, 3))
    # The scene moves: a later grab of the color half differs.
    wait_grab(window, lambda g: diff(g[:, :W], first[:, :W]) > 1.0)
    grab = window.grab()
    color, depth = snapshot(srv, "color"), snapshot(srv, "depth")
    left, right = grab[:, :W], grab[:, W:]
    # Left is the color stream, right the depth stream (each nearer its own than the other).
    assert diff(left, color) < diff(left, depth) / 2
    assert diff(right, depth) < diff(right, color) / 2
    assert colourfulness(left) > 20 and colourfulness(right) > 20


LIT = "[...document.querySelectorAll('#filters button.on')].map((b) => b.dataset.name).join()"


def press(window: Window, srv: Server, key: str, expect: list[str]) -> None:
    """Type `key` into the window and see its effect in GET /filters.

    Without a window manager a synthetic key now and then reaches the window before Qt
    has taken the focus, and is dropped, when the machine is busy; it is typed once more
    (as a user would) only if the settings did not change within 5 s.
    """
    before = filters(srv)
    for _ in range(2):
        window.key(key)
        deadline = time.monotonic() + 5.0
        while filters(srv) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        if filters(srv) != before:
            break
    assert filters(srv) == expect, (key, before, filters(srv))


def test_keys_page_and_post_filters_change_the_same_settings(xvfb: Xvfb, shown) -> None:  # noqa: ANN001
    srv, window = shown
    assert filters(srv) == []
    with Browser() as page:
        page.goto(srv.base + "/")
        page.wait_for("window.depthcam && window.depthcam.ready")
        press(window, srv, "g", ["gray"])
        wait_grab(window, lambda g: colourfulness(g[:, :W]) < 3)
        assert srv.status()["filters"] == ["gray"]
        assert page.wait_for(f"{LIT} === 'gray'", timeout=5)  # the page's button lights up
        # A click on the page's button shows in the window.
        page.eval("document.querySelector('#filters button[data-name=gray]').click()")
        wait_grab(window, lambda g: colourfulness(g[:, :W]) > 20)
        assert filters(srv) == []
    press(window, srv, "g", ["gray"])
    press(window, srv, "b", ["gray", "blur"])
    press(window, srv, "x", [])
    wait_grab(window, lambda g: colourfulness(g[:, :W]) > 20)
    # The page's way (POST /filters) shows in the window, and the next key builds on it.
    assert post_filters(srv, {"filters": ["edges", "blur=15"]})[0] == 200
    wait_grab(window, lambda g: g[:, :W].mean() < 40 and colourfulness(g[:, :W]) < 3)
    press(window, srv, "e", ["blur=15"])
    wait_grab(window, lambda g: g[:, :W].mean() > 60)
    press(window, srv, "b", [])
    assert srv.status()["filters"] == []


def test_the_blank_window_check_reads_what_the_screen_shows(
        xvfb: Xvfb, shown, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    srv, window = shown
    wid = window.id()
    res = xvfb.run("xdotool", "getwindowgeometry", "--shell", str(wid))
    geo = dict(line.split("=", 1) for line in res.stdout.decode().split())
    rect = (int(geo["X"]), int(geo["Y"]), int(geo["WIDTH"]), int(geo["HEIGHT"]))
    monkeypatch.setenv("DISPLAY", xvfb.display)
    pid = _display_pid(srv)
    # Nothing is drawn between the grab and the reads below (well within HUNG_AFTER_S).
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen = xvfb.grab(wid)
        here = sample(frozen)
        assert here is not None
        assert drawn([here], (2 * W, H), rect) is True
        assert drawn([255 - here], (2 * W, H), rect) is False  # what it would not show
        assert drawn([255 - here, here], (2 * W, H), rect) is True  # any recent frame
        assert drawn([here], (W, H), rect) is None  # a resized window cannot be told
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_black_screen_never_passes_for_a_dark_frame(
        own_screen: Xvfb, monkeypatch: pytest.MonkeyPatch) -> None:
    """A window left black is blank, even where the frame it should show is mostly dark
    (its samples within the tolerance of black)."""
    monkeypatch.setenv("DISPLAY", own_screen.display)
    dark = np.zeros((len(grid(320, 120)), 3), np.int16)
    dark[::4] = 200  # a quarter bright: spread enough to prove something
    assert sample(np.zeros((120, 320, 3), np.uint8)) is None
    assert float(np.median(np.abs(dark))) < 40
    assert drawn([dark], (320, 120), (100, 100, 320, 120)) is False


def _display_pid(srv: Server) -> int:
    """The child that draws the window: the one that loaded Qt's X11 platform plugin."""
    for pid in children_of(srv.pid):
        with contextlib.suppress(OSError):
            if "libqxcb" in Path(f"/proc/{pid}/maps").read_text():
                return pid
    raise AssertionError("no display child")


def _frames_in(reader: MjpegReader, seconds: float) -> int:
    frames: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames.add(reader.next_part()[0]["x-frame"])
    return len(frames)


def test_a_stalled_display_never_slows_the_web_clients(xvfb: Xvfb, shown) -> None:  # noqa: ANN001
    srv, window = shown
    pid = _display_pid(srv)
    reader = MjpegReader(srv.port, "/color")
    try:
        _frames_in(reader, 0.5)
        mark = srv.mark()
        before = _frames_in(reader, 2.0)
        rates_before = srv.rates(mark)
        os.kill(pid, signal.SIGSTOP)  # the slowest display there is: it draws nothing
        try:
            mark = srv.mark()
            during = _frames_in(reader, 2.0)
            rates_during = srv.rates(mark)
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        reader.close()
    # A pipeline that waited on its display would send ~nothing while it is stopped. The
    # share of the encoded frames the client gets is judged against the share it got
    # while the display drew (on a loaded machine the drawing itself takes CPU from the
    # web process; stopping it can only free some).
    share_before = before / 2.0 / rates_before.encoded["color"]
    share_during = during / 2.0 / rates_during.encoded["color"]
    detail = (before, during, rates_before, rates_during)
    assert share_before > 0, detail
    assert share_during >= RATE_SHARE * share_before, detail
    first = window.grab()
    wait_grab(window, lambda g: diff(g[:, :W], first[:, :W]) > 1.0)
    assert _display_pid(srv) == pid  # it carried on; nobody had to restart it


def test_a_hung_window_is_replaced_and_the_stream_never_stops(xvfb: Xvfb, shown) -> None:  # noqa: ANN001
    srv, window = shown
    pid = _display_pid(srv)
    reader = MjpegReader(srv.port, "/color")
    try:
        # A GUI that stops answering (as Qt's event wait now and then does) looks like this
        # from outside: the process lives on and beats no more.
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + HUNG_AFTER_S + 10
        while pid_alive(pid):
            assert time.monotonic() < deadline, srv.log()[-3000:]
            assert _frames_in(reader, 0.5) > 0  # the web clients never noticed
        first = wait_grab(window, lambda g: g.shape == (H, 2 * W, 3)
                          and colourfulness(g[:, :W]) > 20)
        wait_grab(window, lambda g: diff(g[:, :W], first[:, :W]) > 1.0)  # live again
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        reader.close()
    assert _display_pid(srv) != pid  # a new process (its window may reuse the old id)
    log = srv.log()
    assert "display process stopped responding" in log and "Traceback" not in log, log


@pytest.fixture
def own_screen(xvfb: Xvfb) -> Iterator[Xvfb]:
    """A screen of its own, so the window found is this server's (the module's is on xvfb)."""
    x = Xvfb(1600, 1200)
    try:
        yield x
    finally:
        x.stop()


@pytest.mark.parametrize("how", ["q", "close button"])
def test_q_or_closing_the_window_stops_the_whole_server(own_screen: Xvfb, how: str) -> None:
    xvfb = own_screen
    with displayed(xvfb) as (srv, window):
        children = children_of(srv.pid)
        if how == "q":
            window.key("q")
        else:
            xvfb.close_window(window.id())
        t0 = time.monotonic()
        try:
            code = srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 15 s after {how}:\n{srv.log()[-4000:]}")
        took = time.monotonic() - t0
        assert code == 0, srv.log()
        assert took < supervisor.TICK_S + STOP_DEADLINE_S, (took, srv.log())
        assert shm_segments(srv.pid) == []
        assert not [p for p in children if pid_alive(p)]
        assert "Traceback" not in srv.log()


def test_losing_the_x_server_costs_the_window_only(own_screen: Xvfb) -> None:
    with displayed(own_screen) as (srv, _):
        died = srv.log().count("display process died")
        own_screen.stop()
        wait_log(srv, "cannot open the X display")
        before = srv.status()["frames_captured"]
        assert srv.get("/color.jpg")[0] == 200
        assert srv.status()["frames_captured"] > before
        log = srv.log()
        assert log.count("display process died") == died + 1 and "Traceback" not in log, log
        assert srv.stop(signal.SIGINT) == 0


def test_a_window_left_blank_is_reopened_and_shows_the_stream(own_screen: Xvfb) -> None:
    # What the check sees of a window Qt never draws into: the same pixels, whatever the
    # stream shows. A window kept over it looks just so, until it stops being raised.
    cover = Cover(own_screen.display, (0, 0, 1600, 1200))
    try:
        with running("--display", "--width", str(W), "--height", str(H),
                     env=own_screen.env) as srv:
            wait_log(srv, "the window stayed blank")
            cover.lower_guard()
            wait_log(srv, "the window shows the stream")
            window = Window(own_screen, srv)
            first = wait_grab(window, lambda g: g.shape == (H, 2 * W, 3)
                              and colourfulness(g[:, :W]) > 20)
            wait_grab(window, lambda g: diff(g[:, :W], first[:, :W]) > 1.0)  # live
            log = srv.log()
            reopened = log.count("the window stayed blank")
            assert 1 <= reopened <= REOPEN_AT_MOST, log
            assert log.count("display process died") == reopened and "Traceback" not in log
    finally:
        cover.close()


def blank_verdict_deadline(srv: Server) -> float:
    """Seconds until the display gives up on a window that stays blank: the first window
    and each reopen are checked (DRAWN_CHECK_AFTER_S, then BLANK_READS reads), each reopen
    after the supervisor's backoff and loop tick and a process start (twice this
    server's start, as in Server.restart_deadline)."""
    assert srv.ready_s is not None
    per_window = DRAWN_CHECK_AFTER_S + BLANK_READS * BLANK_READ_EVERY_S + 2 * srv.ready_s
    backoffs = sum(min(supervisor.BACKOFF_FIRST_S * 2**i, supervisor.BACKOFF_MAX_S)
                   + supervisor.TICK_S for i in range(REOPEN_AT_MOST))
    return (REOPEN_AT_MOST + 1) * per_window + backoffs


def test_a_window_that_stays_blank_is_left_after_3_reopens(own_screen: Xvfb) -> None:
    cover = Cover(own_screen.display, (0, 0, 1600, 1200))
    try:
        with running("--display", "--width", str(W), "--height", str(H),
                     env=own_screen.env) as srv:
            wait_log(srv, "the window still looks blank", timeout=blank_verdict_deadline(srv))
            before = srv.status()["frames_captured"]
            assert srv.get("/color.jpg")[0] == 200
            assert srv.status()["frames_captured"] > before  # the stream went on
            log = srv.log()
            assert log.count("the window stayed blank") == REOPEN_AT_MOST, log
            assert log.count("display process died") == REOPEN_AT_MOST, log
            assert "the window shows the stream" not in log and "Traceback" not in log
            assert srv.stop(signal.SIGINT) == 0
    finally:
        cover.close()


def test_windows_are_tiled_in_rows_across_the_screen() -> None:
    sizes = [(640, 480), (320, 240), (640, 480), (1280, 720)]
    # Depth beside color: 1280 + 640 fit a 2000-pixel row, the third starts the next row
    # below the tallest; the fourth (color alone, 1280: 2560 does not fit) the row after.
    assert [tile(sizes, i, 2000) for i in range(4)] == [(0, 0), (1280, 0), (0, 480),
                                                        (0, 960)]
    assert tile([(1280, 720)], 0, 1920) == (0, 0)
    with pytest.raises(IndexError):
        tile(sizes, 4, 2000)


def test_several_cameras_get_a_window_each(own_screen: Xvfb, tmp_path: Path) -> None:
    """A window per camera, titled with its name: each shows its own camera, its keys
    toggle that camera's filters, and q in any of them stops the whole server."""
    from tests.camera.rs_recording import make_recording  # noqa: PLC0415

    rec = make_recording(tmp_path / "small.db3", 160, 120, 15, frames=15)
    with running("--display", "--width", str(W), "--height", str(H), "--source",
                 "front=synthetic", "--source", f"small={rec['path']}",
                 env=own_screen.env) as srv:
        front = Window(own_screen, srv, r"^camera front \(q quits")
        small = Window(own_screen, srv, r"^camera small \(q quits")
        # Tiled, not stacked: on the screen the front camera (color and depth) fills the
        # top left, the small one stands to its right.
        def screen(pred: Callable[[np.ndarray, np.ndarray], bool]) -> None:
            deadline = time.monotonic() + 20
            while True:
                shot = own_screen.grab_screen()
                at_front, at_small = shot[:H, : 2 * W], shot[:120, 2 * W : 2 * W + 320]
                if pred(at_front, at_small):
                    return
                assert time.monotonic() < deadline, (
                    colourfulness(at_front[:, :W]), colourfulness(at_small[:, :160]),
                    srv.log()[-3000:])
                time.sleep(0.1)

        screen(lambda f, s: colourfulness(f[:, :W]) > 20 and colourfulness(s[:, :160]) > 20)
        small.key("g")
        deadline = time.monotonic() + 20
        while json.loads(srv.get("/cam/small/filters")[2])["active"] != ["gray"]:
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.1)
        assert json.loads(srv.get("/filters")[2])["active"] == []  # the front camera's
        screen(lambda f, s: colourfulness(f[:, :W]) > 20 and colourfulness(s[:, :160]) < 2)
        front.key("q")
        assert srv.proc.wait(15) == 0, srv.log()
        assert "Traceback" not in srv.log()


def test_display_that_does_not_answer_is_one_clear_line() -> None:
    taken = {int(n[1:]) for n in os.listdir("/tmp/.X11-unix") if n[1:].isdigit()} \
        if os.path.isdir("/tmp/.X11-unix") else set()
    unused = max(taken | {90}) + 1
    res = run_cli("--display", env={**os.environ, "DISPLAY": f":{unused}"})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--display" in lines[0] and f":{unused}" in lines[0], res.stderr
