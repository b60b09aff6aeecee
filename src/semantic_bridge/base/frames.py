"""The frame contract every per-frame array obeys (DESIGN.md §2).

Frame ``t`` covers ``[t * 0.08 s, (t + 1) * 0.08 s)``; an utterance of ``n`` samples at
24 kHz has ``ceil(n / 1920)`` frames. The codec's 12.5 Hz is the only frame rate here.
"""

from __future__ import annotations

import numpy as np

from .errors import UserError

FRAME_RATE = 12.5  # Hz
FRAME_SECONDS = 1.0 / FRAME_RATE  # 0.08 s


class FrameError(UserError, ValueError):
    """A per-frame array whose length breaks the contract."""


def samples_per_frame(sample_rate: int) -> int:
    """1920 at 24 kHz. The rate must hold a whole number of samples per 80 ms frame."""
    hop = sample_rate * 2 // 25
    if hop * 25 != sample_rate * 2:
        raise FrameError(f"sample rate {sample_rate} Hz has no whole number of samples per 80 ms frame")
    return hop


def n_frames(n_samples: int, sample_rate: int) -> int:
    """``ceil(n_samples / samples_per_frame)``: the partial last frame counts."""
    return -(-int(n_samples) // samples_per_frame(sample_rate))


def frame_end_times(count: int) -> np.ndarray:
    """``[(t + 1) * 0.08 for t in range(count)]`` in seconds, float64 ``[count]``."""
    return (np.arange(count, dtype=np.float64) + 1.0) * FRAME_SECONDS


def check_frames(name: str, length: int, expected: int) -> None:
    """Raise ``FrameError`` naming the array when ``length != expected``: never trim silently."""
    if length != expected:
        raise FrameError(f"{name} has {length} frames, the audio has {expected}")
