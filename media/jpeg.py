"""JPEG codecs: libjpeg-turbo (PyTurboJPEG, and tjCompress2 directly), OpenCV as the fallback.

The backend is picked once per process (`pick_backend`) and reported in /status.
TurboJPEG handles are not thread-safe and cost ~2 ms to create, so each thread keeps
its own (`JpegCodec.encode` looks it up in a thread-local). Encoding calls tjCompress2
itself with a per-thread handle and output buffer: PyTurboJPEG makes a handle, a
worst-case output buffer and two copies of the result on every call (0.1-0.2 ms at 720p).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import threading
import warnings
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

SUBSAMPLING = ("420", "422", "444", "gray")


def _load_turbojpeg() -> Any:
    from turbojpeg import TurboJPEG  # noqa: PLC0415  (optional dependency)

    return TurboJPEG()


def pick_backend(requested: str = "auto") -> str:
    """Return 'turbojpeg' or 'opencv'; 'auto' prefers libjpeg-turbo and warns once if absent."""
    if requested == "opencv":
        return "opencv"
    try:
        _load_turbojpeg()
        return "turbojpeg"
    except (ImportError, OSError, RuntimeError) as exc:
        if requested == "turbojpeg":
            raise RuntimeError(f"libjpeg-turbo could not be loaded: {exc}") from exc
        log.warning("libjpeg-turbo not available (%s); falling back to OpenCV's JPEG encoder", exc)
        return "opencv"


_TJFLAG_NOREALLOC = 1024


def _turbojpeg_lib() -> ctypes.CDLL:
    """libturbojpeg with tjCompress2's signature, found the way PyTurboJPEG finds it."""
    import turbojpeg  # noqa: PLC0415

    path = ctypes.util.find_library("turbojpeg") or next(
        (p for p in turbojpeg.DEFAULT_LIB_PATHS.get(platform.system(), []) if os.path.exists(p)),
        "libturbojpeg.so.0")
    lib = ctypes.CDLL(path)
    lib.tjInitCompress.restype = ctypes.c_void_p
    lib.tjDestroy.argtypes = [ctypes.c_void_p]
    lib.tjBufSize.restype = ctypes.c_ulong
    lib.tjBufSize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.tjGetErrorStr2.restype = ctypes.c_char_p
    lib.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
    lib.tjCompress2.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong), ctypes.c_int,
        ctypes.c_int, ctypes.c_int,
    ]
    return lib


class _Compressor:
    """One thread's compressor: a tjhandle and an output buffer kept from frame to frame."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.handle = lib.tjInitCompress()
        if not self.handle:
            raise OSError("tjInitCompress failed")
        self.buf = np.empty(0, np.uint8)  # np.empty: pages stay unmapped until written

    def encode(self, img: np.ndarray, pixel_format: int, subsamp: int, quality: int) -> bytes:
        """JPEG of an image whose rows are contiguous (any pitch); the JPEG is copied once."""
        h, w = img.shape[:2]
        need = self.lib.tjBufSize(w, h, subsamp)
        if len(self.buf) < need:
            self.buf = np.empty(need, np.uint8)
        ptr = ctypes.c_void_p(self.buf.ctypes.data)
        size = ctypes.c_ulong(len(self.buf))
        if self.lib.tjCompress2(self.handle, img.ctypes.data, w, img.strides[0], h, pixel_format,
                                ctypes.byref(ptr), ctypes.byref(size), subsamp, quality,
                                _TJFLAG_NOREALLOC) != 0:
            raise OSError(f"libjpeg-turbo: {self.lib.tjGetErrorStr2(self.handle).decode()}")
        return ctypes.string_at(ptr, size.value)

    def __del__(self) -> None:
        self.lib.tjDestroy(self.handle)


class JpegCodec:
    """Encode BGR (or gray) images to JPEG and back with one backend chosen up front."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._local = threading.local()
        if backend == "turbojpeg":
            import turbojpeg  # noqa: PLC0415

            self._tj = turbojpeg
            self._lib = _turbojpeg_lib()
            self._samp = {
                "420": turbojpeg.TJSAMP_420,
                "422": turbojpeg.TJSAMP_422,
                "444": turbojpeg.TJSAMP_444,
                "gray": turbojpeg.TJSAMP_GRAY,
            }

    def _handle(self) -> Any:
        tj = getattr(self._local, "tj", None)
        if tj is None:
            tj = self._local.tj = self._tj.TurboJPEG()
        return tj

    def _compressor(self) -> _Compressor:
        comp = getattr(self._local, "comp", None)
        if comp is None:
            comp = self._local.comp = _Compressor(self._lib)
        return comp

    def encode(self, img: np.ndarray, quality: int = 80, subsampling: str = "420") -> bytes:
        """JPEG-encode a uint8 BGR (HxWx3), BGRX (HxWx4, X ignored) or gray (HxW) image.

        BGRX gives the same JPEG as its BGR part; libjpeg-turbo reads it without a repack.
        """
        if self.backend == "turbojpeg":
            tj = self._tj
            if img.dtype != np.uint8 or img.ndim not in (2, 3) or (
                    img.ndim == 3 and img.shape[2] not in (3, 4)):
                raise ValueError(f"cannot JPEG-encode a {img.dtype} {img.shape} array")
            if img.ndim == 2:
                fmt, samp = tj.TJPF_GRAY, tj.TJSAMP_GRAY
            else:
                fmt = tj.TJPF_BGRX if img.shape[2] == 4 else tj.TJPF_BGR
                samp = self._samp[subsampling]
            pixel = img.shape[2] if img.ndim == 3 else 1
            st = img.strides
            if st[-1] != 1 or st[1] != pixel or st[0] < pixel * img.shape[1]:
                img = np.ascontiguousarray(img)  # tjCompress2 needs packed rows, any pitch
            return self._compressor().encode(img, fmt, samp, int(quality))
        params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
        sampling = getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR", None)
        if sampling is not None and subsampling in ("420", "422", "444"):
            factor = {
                "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            }[subsampling]
            params += [int(sampling), int(factor)]
        ok, buf = cv2.imencode(".jpg", img, params)
        if not ok:
            raise RuntimeError("OpenCV failed to encode a JPEG")
        return buf.tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a JPEG to a BGR image; corrupt data (even 'recoverable') is a ValueError.

        libjpeg-turbo reports damaged entropy data as a warning and returns a half-grey
        picture; a stream is better served by dropping that frame. Call it from one thread
        (warning filters are process-global).
        """
        if self.backend == "turbojpeg":
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    return self._handle().decode(data, pixel_format=self._tj.TJPF_BGR)
            except (OSError, UserWarning) as exc:
                raise ValueError(f"corrupt JPEG: {exc}") from exc
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("corrupt JPEG")
        return img
