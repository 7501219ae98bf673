"""Headless Chromium driven over the DevTools protocol, for tests that assert on a page.

`Browser` starts Debian's Chromium with a fresh profile and a DevTools port, attaches to
its page target over a WebSocket, and offers what the tests need: navigate, evaluate a
script (awaiting promises), wait for a condition, take a screenshot. WebGL2 runs through
SwiftShader (`webgl=True`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from websockets.sync.client import connect

BASE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--autoplay-policy=no-user-gesture-required",
)
WEBGL_FLAGS = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader",
               "--ignore-gpu-blocklist")


class PageError(Exception):
    """A script threw in the page, or the protocol answered with an error."""


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, *, width: int = 1400, height: int = 800, webgl: bool = False,
                 extra_flags: tuple[str, ...] = ()) -> None:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise RuntimeError("chromium is not installed (make setup installs it)")
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        flags = [*BASE_FLAGS, *(WEBGL_FLAGS if webgl else ("--disable-gpu",)), *extra_flags,
                 f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                 "--remote-debugging-port=0", "about:blank"]
        # Chromium keeps its singleton socket in TMPDIR: inside the profile, it goes with it.
        self.proc = subprocess.Popen([exe, *flags], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, "TMPDIR": self.profile})
        self._id = 0
        self.console: list[str] = []
        try:
            port = self._devtools_port()
            self.ws = connect(self._page_ws(port), max_size=64 << 20, open_timeout=10)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float = 20.0) -> int:
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(active.read_text().split()[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    @staticmethod
    def _page_ws(port: int, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.05)
        raise TimeoutError("chromium has no page target")

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one protocol command and return its result (events meanwhile are kept)."""
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer in {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise PageError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.consoleAPICalled":
                args = msg["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in args))
            elif msg.get("method") == "Runtime.exceptionThrown":
                details = msg["params"]["exceptionDetails"]
                self.console.append("exception: " + str(
                    details.get("exception", {}).get("description", details.get("text"))))

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait until the document has loaded."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'",
                      timeout=timeout)

    def eval(self, expression: str, timeout: float = 30.0) -> Any:
        """Evaluate a script in the page (promises are awaited) and return its JSON value."""
        res = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                        awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise PageError(str(d.get("exception", {}).get("description", d.get("text"))))
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll until `expression` is truthy in the page; return its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(PageError):
                last = self.eval(expression)
                if last:
                    return last
            time.sleep(interval)
        raise TimeoutError(f"page condition not met in {timeout} s: {expression} "
                           f"(last value {last!r}; console: {self.console[-5:]})")

    def screenshot(self) -> np.ndarray:
        """The viewport as a BGR image."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise PageError("screenshot did not decode")
        return img

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
