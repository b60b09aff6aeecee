"""Audio I/O and the one-time standardisation to the pipeline's rate (24 kHz mono float32).

Every input goes through ``standardize``: it either returns clean audio (down-mixed and
resampled where that is sensible, and says which fixes it made) or a skip reason. The
reasons are the keys of ``metrics/prepare.json``'s ``skipped`` counts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from .errors import Skip

# skip reasons (stable names: they appear in metrics files)
UNREADABLE = "unreadable"
EMPTY = "empty"
NOT_FINITE = "nan"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
SILENT = "silent"
NO_TEXT = "no_text"
NO_SPEAKER = "no_speaker"
DUPLICATE_ID = "duplicate_id"

# fixes (counted, not skipped)
DOWNMIXED = "downmixed"
RESAMPLED = "resampled"


@dataclass
class Standardized:
    """Audio ready for the pipeline: ``audio[N]`` float32 at ``sample_rate``."""

    audio: np.ndarray
    sample_rate: int
    fixes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def read_audio(source: str | Path | bytes, max_seconds: Optional[float] = None) -> tuple[np.ndarray, int]:
    """Read a file (or its bytes) as ``float32 [channels, N]`` and its rate.

    Raises ``Skip(UNREADABLE)`` for anything libsndfile cannot decode, and ``Skip(TOO_LONG)``
    when the header says it is longer than ``max_seconds`` -- before decoding it.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    handle = (lambda: io.BytesIO(source)) if isinstance(source, (bytes, bytearray)) else (lambda: source)
    try:
        if max_seconds is not None:
            info = sf.info(handle())
            if info.frames > max_seconds * info.samplerate:
                raise Skip(TOO_LONG, f"{name}: {info.frames / info.samplerate:.1f} s > {max_seconds} s")
        data, rate = sf.read(handle(), dtype="float32", always_2d=True)
    except Skip:
        raise
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise Skip(UNREADABLE, f"{name}: {err}") from None
    return np.ascontiguousarray(data.T), int(rate)


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc) of ``audio[..., N]``."""
    if orig_rate == new_rate:
        return audio.astype(np.float32, copy=False)
    import torch  # imported on first use: stages that never resample start faster
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), orig_rate, new_rate)
    return out.numpy()


def to_pcm16k(audio: np.ndarray, sample_rate: int) -> bytes:
    """16 kHz 16-bit little-endian PCM (pocketsphinx's input)."""
    wave = resample(audio, sample_rate, 16000)
    return (np.clip(wave, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def standardize(
    audio: np.ndarray,
    sample_rate: int,
    target_rate: int,
    min_seconds: float,
    max_seconds: float,
    silence_dbfs: float,
) -> Standardized:
    """Check and convert ``audio`` (``[N]`` or ``[channels, N]``) to mono ``target_rate``.

    Raises ``Skip`` with the skip reason for empty, non-finite, too short/long or
    silent audio. Multi-channel audio is averaged to mono; other rates are resampled.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise Skip(UNREADABLE, f"expected [N] or [channels, N] audio, got shape {audio.shape}")
    if audio.shape[0] > audio.shape[1] and audio.shape[1] <= 8:
        audio = audio.T  # [N, channels] as soundfile and some datasets return it
    fixes: list[str] = []
    if audio.size == 0 or sample_rate <= 0:
        raise Skip(EMPTY, f"{audio.shape[-1]} samples at {sample_rate} Hz")
    if not np.isfinite(audio).all():
        raise Skip(NOT_FINITE, "NaN or infinite samples")
    if audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
        fixes.append(DOWNMIXED)
    mono = audio[0]
    seconds = len(mono) / sample_rate
    if seconds < min_seconds:
        raise Skip(TOO_SHORT, f"{seconds:.3f} s < {min_seconds} s")
    if seconds > max_seconds:
        raise Skip(TOO_LONG, f"{seconds:.1f} s > {max_seconds} s")
    peak = float(np.abs(mono).max())
    if peak <= 10 ** (silence_dbfs / 20):
        raise Skip(SILENT, f"peak {20 * np.log10(max(peak, 1e-12)):.1f} dBFS")
    if sample_rate != target_rate:
        mono = resample(mono, sample_rate, target_rate)
        fixes.append(RESAMPLED)
    return Standardized(np.ascontiguousarray(mono, dtype=np.float32), target_rate, fixes)
