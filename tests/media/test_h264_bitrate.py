"""libx264 through PyAV follows a new bit rate on the open encoder (no re-open, no IDR)."""

from __future__ import annotations

import numpy as np

from media.h264 import H264Encoder

W, H, FPS = 320, 240, 30


def _rate(enc: H264Encoder, frames: list[np.ndarray]) -> tuple[float, int]:
    """Bit rate of encoding `frames` at FPS, and how many keyframes came out."""
    total = keys = 0
    for img in frames:
        for au in enc.encode(img):
            total += len(au.data)
            keys += au.keyframe
    return total * 8 * FPS / len(frames), keys


def test_set_bitrate_moves_the_output_without_a_keyframe() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (H, W + 300, 3), dtype=np.uint8)  # noise: rate-limited
    frames = [np.ascontiguousarray(base[:, i:i + W]) for i in range(240)]
    enc = H264Encoder(W, H, FPS, 1_000_000, 600)
    _rate(enc, frames[:60])  # the first IDR and the rate control settling
    high, _ = _rate(enc, frames[60:120])
    enc.set_bitrate(400_000)
    _rate(enc, frames[120:150])  # about a second to follow
    low, keys = _rate(enc, frames[150:240])
    assert high > 0.6e6, high
    assert low < 0.55 * high and low < 0.5e6, (high, low)
    assert keys == 0  # reconfigured in place
    enc.set_bitrate(5_000_000)  # never above the rate it was opened with
    assert enc.bitrate == 1_000_000
