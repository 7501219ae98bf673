"""The few libX11 calls the display child needs, through ctypes.

Whether the X server answers and how large its screen is are asked here before Qt is
touched, because a Qt build of OpenCV aborts the whole process when it cannot connect;
the drawn check reads a few of the window's pixels back from the screen here too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

import numpy as np


class NoScreen(Exception):
    """The X server named by DISPLAY does not answer."""


def screen_size() -> tuple[int, int] | None:
    """(width, height) of the default X screen; None if libX11 is not there to ask.

    Asked through libX11 directly because a Qt build of OpenCV aborts the whole process
    when it cannot connect, which must end in one clear line instead.
    """
    x11 = _x11()
    if x11 is None:
        return None
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        raise NoScreen(f"cannot open the X display {os.environ.get('DISPLAY', '')!r}")
    try:
        screen = x11.XDefaultScreen(dpy)
        return int(x11.XDisplayWidth(dpy, screen)), int(x11.XDisplayHeight(dpy, screen))
    finally:
        x11.XCloseDisplay(dpy)


def _x11() -> Any:
    """libX11 with the few calls used here typed (ctypes' int default truncates pointers)."""
    path = ctypes.util.find_library("X11")
    if path is None:
        return None
    x11 = ctypes.CDLL(path)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XGetImage.restype = ctypes.c_void_p
    x11.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                              ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x11.XGetPixel.restype = ctypes.c_ulong
    x11.XGetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    for fn in (x11.XDestroyImage, x11.XDefaultScreen, x11.XCloseDisplay):
        fn.argtypes = [ctypes.c_void_p]
    for fn in (x11.XDisplayWidth, x11.XDisplayHeight):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return x11


def on_screen(rect: tuple[int, int, int, int], points: list[tuple[int, int]]) -> np.ndarray | None:
    """BGR of the screen at `points` (x, y inside `rect`), read from the root window;
    None when it cannot be read (no libX11, no display, off screen)."""
    x11 = _x11()
    if x11 is None:
        return None
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        return None
    try:
        x, y, w, h = rect
        screen = x11.XDefaultScreen(dpy)
        if x < 0 or y < 0 or x + w > x11.XDisplayWidth(dpy, screen) \
                or y + h > x11.XDisplayHeight(dpy, screen):
            return None  # X answers a read past the screen's edge with a fatal error
        img = x11.XGetImage(dpy, x11.XDefaultRootWindow(dpy), x, y, w, h, 0xFFFFFFFF, 2)
        if not img:
            return None
        try:
            px = [x11.XGetPixel(img, px_, py_) for px_, py_ in points]
        finally:
            x11.XDestroyImage(img)
    finally:
        x11.XCloseDisplay(dpy)
    return np.array([[(v & 0xFF), (v >> 8) & 0xFF, (v >> 16) & 0xFF] for v in px], np.int16)
