"""What every aligner takes and returns, and the skip reasons of the ``align`` stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from semantic_bridge.base.errors import Skip

# skip reasons (stable names: metrics keys)
NO_WORDS = "no_words"
OOV = "oov"
ALIGN_FAILED = "align_failed"
NO_TIMINGS = "no_timings"
WORD_MISMATCH = "word_mismatch"
TEXT_MISMATCH = "text_mismatch"  # aligned, but the audio does not say these words

Times = list[tuple[float, float]]  # one (start, end) in seconds per word


@dataclass(frozen=True)
class Aligned:
    """Word times and the aligner's confidence check: ``gap`` is the mean per-frame score by
    which an unconstrained decode beats the forced alignment over the words' frames (None
    where the backend has no such check); above the backend's threshold the transcript is
    taken not to match the audio (``text_mismatch``)."""

    times: Times
    gap: Optional[float] = None


Outcome = Aligned | Skip  # what an aligner gives per item


@dataclass(frozen=True)
class Item:
    audio: np.ndarray  # [N] float32
    sample_rate: int
    words: list[str]  # normalised transcript words
    truth: list[dict[str, Any]]  # the corpus's word timings, [] when it has none
