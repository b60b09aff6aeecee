"""Words of a transcript, with character spans: the unit every word timing refers to.

A word is a run of letters or digits, with inner apostrophes ("don't", "o'clock");
punctuation and spaces belong to no word. ``align`` produces one (start, end) per word
of ``transcript_words(text)``, in order; ``qwen`` maps tokens to words through the spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class Span:
    word: str  # as written in the transcript
    start: int  # character offsets into the transcript, [start, end)
    end: int


def transcript_words(text: str) -> list[Span]:
    return [Span(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def normalize(word: str) -> str:
    """Lower case, typographic apostrophe folded: the form aligners and comparisons use."""
    return word.lower().replace("’", "'")
