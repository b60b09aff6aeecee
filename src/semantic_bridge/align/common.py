"""What every aligner takes and returns, and the skip reasons of the ``align`` stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from semantic_bridge.base.errors import Skip

# skip reasons (stable names: metrics keys)
NO_WORDS = "no_words"
OOV = "oov"
ALIGN_FAILED = "align_failed"
NO_TIMINGS = "no_timings"
WORD_MISMATCH = "word_mismatch"

Times = list[tuple[float, float]]  # one (start, end) in seconds per word
Outcome = Times | Skip  # what an aligner gives per item


@dataclass(frozen=True)
class Item:
    audio: np.ndarray  # [N] float32
    sample_rate: int
    words: list[str]  # normalised transcript words
    truth: list[dict[str, Any]]  # the corpus's word timings, [] when it has none
