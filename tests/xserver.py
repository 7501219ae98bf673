"""A virtual X screen (Xvfb) and the X clients that look at and drive its windows.

Windows are found and typed into with xdotool, grabbed with xwd (read here: the XWD
format is a header and raw pixels), and closed the way a window manager closes them when
the user clicks the close button: a WM_DELETE_WINDOW client message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

XVFB_START_TIMEOUT_S = 20.0


class Xvfb:
    """An Xvfb server on a display number it picks itself (-displayfd), so runs never clash."""

    def __init__(self, width: int = 1600, height: int = 1200, log_path: Path | None = None):
        r, w = os.pipe()
        self._own_log = log_path is None
        self.log_path = log_path or Path(f"/tmp/xvfb-{os.getpid()}-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp", "-noreset"],
            pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        os.close(w)
        try:
            self.display = f":{self._read_number(r)}"
        except Exception:
            self.stop()
            raise
        finally:
            os.close(r)
        self.env = {**os.environ, "DISPLAY": self.display}

    def _read_number(self, fd: int) -> int:
        data = b""
        deadline = time.monotonic() + XVFB_START_TIMEOUT_S
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"Xvfb did not start: {self.log_path.read_text()}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 16)
                if not chunk:
                    raise RuntimeError(f"Xvfb did not start: {self.log_path.read_text()}")
                data += chunk
        return int(data)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def run(self, *cmd: str, timeout: float = 20.0) -> subprocess.CompletedProcess[bytes]:
        """Run an X client on this display."""
        return subprocess.run(cmd, env=self.env, capture_output=True, timeout=timeout,
                              check=False)

    def find_window(self, name_regex: str, timeout: float = 30.0) -> int:
        """Id of the first mapped window whose title matches, waiting for it to appear."""
        res = self.run("xdotool", "search", "--sync", "--onlyvisible", "--name", name_regex,
                       timeout=timeout)
        ids = res.stdout.split()
        if res.returncode != 0 or not ids:
            raise RuntimeError(f"no window {name_regex!r}: {res.stderr.decode()}")
        return int(ids[0])

    def key(self, window: int, key: str) -> None:
        """Focus the window and type a key through XTEST, as a keyboard would."""
        res = self.run("xdotool", "windowfocus", "--sync", str(window), "key", key)
        if res.returncode != 0:
            raise RuntimeError(f"xdotool key {key}: {res.stderr.decode()}")

    def grab(self, window: int) -> np.ndarray:
        """The window's pixels now (BGR), read by xwd from the X server."""
        res = self.run("xwd", "-id", str(window), "-silent")
        if res.returncode != 0:
            raise RuntimeError(f"xwd: {res.stderr.decode()}")
        return parse_xwd(res.stdout)

    def grab_screen(self) -> np.ndarray:
        """The whole screen's pixels now (BGR): what the user sees, windows as tiled.
        xwd fails when a window goes while it reads the screen (a reopened window): it
        reads again, a few times."""
        for _ in range(5):
            res = self.run("xwd", "-root", "-silent")
            if res.returncode == 0:
                return parse_xwd(res.stdout)
            time.sleep(0.05)
        raise RuntimeError(f"xwd: {res.stderr.decode()}")

    def close_window(self, window: int) -> None:
        """Send WM_DELETE_WINDOW, what a window manager does on a click of the close button."""
        x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XInternAtom.restype = ctypes.c_ulong
        x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int,
                                   ctypes.c_long, ctypes.c_void_p]
        x11.XFlush.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        dpy = x11.XOpenDisplay(self.display.encode())
        if not dpy:
            raise RuntimeError(f"cannot open {self.display}")
        try:
            ev = _XEvent()
            ev.xclient.type = _CLIENT_MESSAGE
            ev.xclient.window = window
            ev.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
            ev.xclient.format = 32
            ev.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
            ev.xclient.data[1] = 0  # CurrentTime
            if not x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(ev)):
                raise RuntimeError("XSendEvent failed")
            x11.XFlush(dpy)
        finally:
            x11.XCloseDisplay(dpy)


class Cover:
    """A plain black window over a part of the screen, raised above every other window
    every 50 ms until `lower_guard()`: another application's window the user cannot move."""

    def __init__(self, display: str, rect: tuple[int, int, int, int]) -> None:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype = ctypes.c_ulong
        x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x11.XCreateSimpleWindow.restype = ctypes.c_ulong
        x11.XCreateSimpleWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int,
                                            ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                            ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulong]
        for fn in (x11.XMapRaised, x11.XRaiseWindow, x11.XDestroyWindow):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.x11 = x11
        self.dpy = x11.XOpenDisplay(display.encode())
        if not self.dpy:
            raise RuntimeError(f"cannot open {display}")
        x, y, w, h = rect
        self.win = x11.XCreateSimpleWindow(self.dpy, x11.XDefaultRootWindow(self.dpy),
                                           x, y, w, h, 0, 0, 0)
        x11.XMapRaised(self.dpy, self.win)
        x11.XSync(self.dpy, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_on_top, daemon=True)
        self._thread.start()

    def _keep_on_top(self) -> None:
        while not self._stop.wait(0.05):
            self.x11.XRaiseWindow(self.dpy, self.win)
            self.x11.XSync(self.dpy, 0)

    def lower_guard(self) -> None:
        """Stop raising it: a window mapped from now on goes above it."""
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        self.lower_guard()
        self.x11.XDestroyWindow(self.dpy, self.win)
        self.x11.XCloseDisplay(self.dpy)


_CLIENT_MESSAGE = 33


class _XClientMessageEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessageEvent), ("pad", ctypes.c_long * 24)]


def parse_xwd(data: bytes) -> np.ndarray:
    """A 24/32-bit TrueColor ZPixmap XWD dump (what xwd writes for such a screen) as BGR."""
    (header_size, _version, pixmap_format, _depth, width, height, _xoff, byte_order, _unit,
     _bit_order, _pad, bits_per_pixel, bytes_per_line, _visual, red_mask, green_mask,
     blue_mask, _bits_rgb, _cmap_entries, ncolors) = struct.unpack(">20I", data[:80])
    if pixmap_format != 2 or bits_per_pixel not in (24, 32):
        raise ValueError(f"unsupported XWD: format {pixmap_format}, {bits_per_pixel} bpp")
    offset = header_size + 12 * ncolors
    raw = np.frombuffer(data, np.uint8, height * bytes_per_line, offset)
    n = bits_per_pixel // 8
    px = raw.reshape(height, bytes_per_line)[:, : width * n].reshape(height, width, n)
    if n == 3:  # packed: widen each pixel to a 32-bit word in the dump's byte order
        pad = np.zeros((height, width, 1), np.uint8)
        px = np.concatenate((px, pad) if byte_order == 0 else (pad, px), axis=2)
    words = np.ascontiguousarray(px).view("<u4" if byte_order == 0 else ">u4")[..., 0]
    out = np.empty((height, width, 3), np.uint8)
    for i, mask in enumerate((blue_mask, green_mask, red_mask)):
        shift = (mask & -mask).bit_length() - 1
        out[..., i] = (words & mask) >> shift
    return out
