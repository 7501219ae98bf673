"""JPEG codecs: libjpeg-turbo through PyTurboJPEG, with OpenCV as the fallback.

The backend is picked once per process (`pick_backend`) and reported in /status.
TurboJPEG handles are not thread-safe and cost ~2 ms to create, so each thread keeps
its own (`JpegCodec.encode` looks it up in a thread-local).
"""

from __future__ import annotations

import logging
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


class JpegCodec:
    """Encode BGR (or gray) images to JPEG and back with one backend chosen up front."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._local = threading.local()
        if backend == "turbojpeg":
            import turbojpeg  # noqa: PLC0415

            self._tj = turbojpeg
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

    def encode(self, img: np.ndarray, quality: int = 80, subsampling: str = "420") -> bytes:
        """JPEG-encode a C-contiguous uint8 BGR (HxWx3), BGRX (HxWx4, X ignored) or gray (HxW)
        image. BGRX gives the same JPEG as its BGR part; libjpeg-turbo reads it directly."""
        if self.backend == "turbojpeg":
            if img.ndim == 2:
                return self._handle().encode(
                    img[:, :, None], quality=quality, pixel_format=self._tj.TJPF_GRAY,
                    jpeg_subsample=self._tj.TJSAMP_GRAY,
                )
            fmt = self._tj.TJPF_BGRX if img.shape[2] == 4 else self._tj.TJPF_BGR
            return self._handle().encode(
                img, quality=quality, pixel_format=fmt, jpeg_subsample=self._samp[subsampling],
            )
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
