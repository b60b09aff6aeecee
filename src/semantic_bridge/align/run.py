"""The ``align`` stage: word start/end times for every transcript word.

Backends (``align.backend``):

* ``pocketsphinx`` (embedded default, ``pocketsphinx.py``): forced alignment with the
  US-English model and dictionary the pip package ships;
* ``nemo`` (``nemo.py``): any NeMo CTC or hybrid CTC model, by name or ``.nemo`` path;
* ``given``: the timings the corpus carries (the embedded corpus: espeak-ng's own).

Where the corpus carries ground-truth timings, ``metrics/align.json`` reports the word
boundary error (|start - true start| and |end - true end|, in ms) of the chosen backend.
Rows keep the corpus order; an utterance that cannot be aligned is left out and counted
under its reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from semantic_bridge.base import schemas, shards
from semantic_bridge.base.errors import Skip
from semantic_bridge.base.files import staged_output
from semantic_bridge.base.frames import n_frames
from semantic_bridge.base.pool import cpu_count
from semantic_bridge.base.progress import Progress
from semantic_bridge.base.words import normalize, transcript_words
from semantic_bridge.config import AlignConfig

from .common import NO_TIMINGS, NO_WORDS, TEXT_MISMATCH, WORD_MISMATCH, Aligned, Item, Outcome, Times

log = logging.getLogger(__name__)

WINDOW = 256  # rows in flight at a time: bounds memory whatever the corpus size


@dataclass
class BoundaryErrors:
    """Word-boundary errors against ground truth, in a 1 ms histogram: flat memory."""

    max_ms: int = 10_000
    counts: np.ndarray = field(default_factory=lambda: np.zeros(10_001, np.int64))
    total_ms: float = 0.0
    n: int = 0
    utterances: int = 0

    def add(self, times: Times, truth: Sequence[dict[str, Any]]) -> None:
        errors = np.abs(np.array([t for pair in times for t in pair])
                        - np.array([t for w in truth for t in (w["start"], w["end"])])) * 1000.0
        self.counts += np.bincount(np.minimum(errors, self.max_ms).astype(int), minlength=self.max_ms + 1)
        self.total_ms += float(errors.sum())
        self.n += len(errors)
        self.utterances += 1

    def summary(self) -> Optional[dict[str, float]]:
        if self.n == 0:
            return None
        cdf = np.cumsum(self.counts)
        p90 = int(np.searchsorted(cdf, 0.9 * self.n))  # upper edge of the 1 ms bin: within 1 ms
        return {"mean_ms": round(self.total_ms / self.n, 2), "p90_ms": float(p90 + 1),
                "boundaries": self.n, "utterances": self.utterances}


@dataclass
class AlignResult:
    aligned: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: BoundaryErrors = field(default_factory=BoundaryErrors)
    truth_mismatch: int = 0  # ground truth present but for other words: not scored
    gaps: list[float] = field(default_factory=list)  # confidence-check gap of every aligned row

    def confidence(self, cfg: AlignConfig) -> Optional[dict[str, Any]]:
        """The text-mismatch check: its threshold, the rate it rejected, the accepted gaps."""
        if cfg.backend == "given":
            return None
        rejected = sum(v.get(TEXT_MISMATCH, 0) for v in self.skipped.values())
        tried = rejected + len(self.gaps)
        gaps = np.array(self.gaps) if self.gaps else np.zeros(1)
        return {"max_gap": cfg.pocketsphinx_max_gap if cfg.backend == "pocketsphinx" else cfg.nemo_max_gap,
                "text_mismatch_rate": rejected / tried if tried else 0.0,
                "accepted_gap": {"p50": float(np.percentile(gaps, 50)), "p90": float(np.percentile(gaps, 90)),
                                 "max": float(gaps.max())}}

    def metrics(self, scale: str, cfg: AlignConfig) -> dict[str, Any]:
        return {
            "scale": scale,
            "backend": cfg.backend,
            "model": {"pocketsphinx": "pocketsphinx en-us (bundled)", "nemo": cfg.nemo_model,
                      "given": "corpus timings"}[cfg.backend],
            "aligned": self.aligned,
            "aligned_total": sum(self.aligned.values()),
            "skipped": self.skipped,
            "skipped_total": sum(sum(v.values()) for v in self.skipped.values()),
            "boundary_error": self.errors.summary(),
            "truth_mismatch": self.truth_mismatch,
            "confidence_check": self.confidence(cfg),
        }


def _truth_matches(truth: Sequence[dict[str, Any]], words: list[str]) -> bool:
    return bool(truth) and [normalize(w["word"]) for w in truth] == words


class GivenAligner:
    """The corpus's own timings (``words`` column of the prepared corpus)."""

    name = "given"

    def align_batch(self, items: list[Item]) -> list[Outcome]:
        return [self._given(it) for it in items]

    @staticmethod
    def _given(item: Item) -> Outcome:
        if not item.truth:
            return Skip(NO_TIMINGS, "the corpus has no word timings")
        if not _truth_matches(item.truth, item.words):
            return Skip(WORD_MISMATCH, "corpus timings are for other words")
        return Aligned([(w["start"], w["end"]) for w in item.truth])

    def close(self) -> None:
        pass


def make_aligner(cfg: AlignConfig):
    """The configured aligner: ``align_batch(items) -> outcomes`` and ``close()``."""
    if cfg.backend == "pocketsphinx":
        from .pocketsphinx import PocketsphinxAligner

        return PocketsphinxAligner(cpu_count(), cfg.pocketsphinx_max_gap)
    if cfg.backend == "nemo":
        from .nemo import NemoAligner

        return NemoAligner(cfg.nemo_model, cfg.batch_size, cfg.nemo_max_gap)
    return GivenAligner()


def _align_rows(aligner, rows: list[dict[str, Any]], result: AlignResult, counts: Counter
                ) -> Iterator[dict[str, Any]]:
    """The aligned rows of one window, in order; the others counted under their reason."""
    spans = [transcript_words(r["text"]) for r in rows]
    words = [[normalize(s.word) for s in sp] for sp in spans]
    todo = [i for i, w in enumerate(words) if w]
    items = [Item(rows[i]["audio"], rows[i]["sample_rate"], words[i], rows[i]["words"]) for i in todo]
    found = dict(zip(todo, aligner.align_batch(items)))
    for i, row in enumerate(rows):
        outcome = found.get(i, Skip(NO_WORDS, "transcript has no words"))
        if isinstance(outcome, Skip):
            counts[outcome.reason] += 1
            log.warning("skip %s: %s", row["id"], outcome)
            continue
        if outcome.gap is not None:
            result.gaps.append(outcome.gap)
        truth = row["words"]
        if _truth_matches(truth, words[i]):
            result.errors.add(outcome.times, truth)
        elif truth:
            result.truth_mismatch += 1
        yield {
            "id": row["id"],
            "text": row["text"],
            "n_frames": n_frames(len(row["audio"]), row["sample_rate"]),
            "words": [{"word": s.word, "start": a, "end": b} for s, (a, b) in zip(spans[i], outcome.times)],
            "backend": aligner.name,
        }


def run_align(cfg: AlignConfig, corpus: str | Path, out: str | Path, max_shard_size: str) -> AlignResult:
    """Align ``corpus/<split>`` for the training splits into ``out/<split>``."""
    corpus, out = Path(corpus), Path(out)
    aligner = make_aligner(cfg)
    result = AlignResult()
    try:
        with staged_output(out) as tmp:
            for split in shards.TRAINING_SPLITS:
                counts: Counter[str] = Counter()
                rows = shards.iter_rows(corpus / split, columns=["id", "text", "audio", "sample_rate", "words"])
                progress = Progress(f"align {split}", shards.num_rows(corpus / split), "utt")
                with shards.ShardedWriter(tmp / split, schemas.ALIGNED, max_shard_size) as writer:
                    for window in shards.windows(rows, WINDOW):
                        writer.write_all(_align_rows(aligner, window, result, counts))
                        progress.update(len(window), skipped=sum(counts.values()))
                    result.aligned[split] = writer.num_rows
                progress.close()
                result.skipped[split] = dict(sorted(counts.items()))
                log.info("%s: %d aligned, %d skipped", split, result.aligned[split], sum(counts.values()))
            shards.write_split_index(tmp, shards.TRAINING_SPLITS)
    finally:
        aligner.close()
    return result
