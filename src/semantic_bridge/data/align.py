"""The ``align`` stage: word start/end times for every transcript word.

Backends (``align.backend``):

* ``pocketsphinx`` (embedded default): forced alignment (``Decoder.set_align_text``)
  with the US-English acoustic model and CMU dictionary the package ships. Words the
  dictionary lacks are skipped as ``oov``: there is no offline grapheme-to-phoneme.
* ``nemo``: any NeMo CTC or hybrid CTC model (``align.nemo_model``: a name or a
  ``.nemo`` path); CTC log-probabilities, Viterbi with ``torchaudio.functional.forced_align``.
* ``given``: the timings the corpus carries (the embedded corpus: espeak-ng's own).

Where the corpus carries ground-truth timings, ``metrics/align.json`` reports the word
boundary error (|start - true start| and |end - true end|, in ms) of the chosen backend.
Rows keep the corpus order; an utterance that cannot be aligned is left out and counted
under its reason.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Sequence

import datasets
import numpy as np

from semantic_bridge.config import AlignConfig, Params
from semantic_bridge.data import shards
from semantic_bridge.data.audio import resample
from semantic_bridge.data.words import normalize, transcript_words
from semantic_bridge.frames import n_frames

log = logging.getLogger(__name__)

WINDOW = 256  # rows in flight at a time: bounds memory whatever the corpus size

# skip reasons (stable names: metrics keys)
NO_WORDS = "no_words"
OOV = "oov"
ALIGN_FAILED = "align_failed"
NO_TIMINGS = "no_timings"
WORD_MISMATCH = "word_mismatch"

WORD = datasets.Features({"word": datasets.Value("string"), "start": datasets.Value("float32"),
                          "end": datasets.Value("float32")})
FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "text": datasets.Value("string"),
    "n_frames": datasets.Value("int32"),
    "words": datasets.List(WORD),
    "backend": datasets.Value("string"),
})


class AlignError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


Times = list[tuple[float, float]]


@dataclass(frozen=True)
class Item:
    audio: np.ndarray  # [N] float32
    sample_rate: int
    words: list[str]  # normalised transcript words
    truth: list[dict[str, Any]]  # the corpus's word timings, [] when it has none


class Aligner(Protocol):
    name: str

    def align_batch(self, items: list[Item]) -> list[Times | AlignError]:
        """Per item: one (start, end) per word, or the error."""


# --------------------------------------------------------------------------- pocketsphinx
_SPHINX_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
_decoder = None  # one per worker process


def _sphinx_decoder():
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        # Forced alignment needs the final state reached: default beams prune it away for
        # about 1 utterance in 3 of the embedded corpus (British espeak voices vs. the US
        # model); with no pruning 1-2 % fail. The search graph is one sentence: cheap.
        _decoder = Decoder(lm=None, samprate=16000, loglevel="FATAL", beam=1e-300, wbeam=1e-300,
                           pbeam=1e-300, fwdflat=False, bestpath=False)
    return _decoder


def to_pcm16k(audio: np.ndarray, sample_rate: int) -> bytes:
    """16 kHz 16-bit little-endian PCM, pocketsphinx's input."""
    wave = resample(audio, sample_rate, 16000)
    return (np.clip(wave, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def sphinx_align(pcm: bytes, words: list[str]) -> Times | AlignError:
    """Forced alignment of ``words`` to 16 kHz PCM with pocketsphinx (100 frames/s)."""
    decoder = _sphinx_decoder()
    missing = [w for w in words if decoder.lookup_word(w) is None]
    if missing:
        return AlignError(OOV, ", ".join(sorted(set(missing))[:5]))
    try:
        # feature state (cepstral mean) carries over between utterances: reset it, so that an
        # utterance's alignment does not depend on what the worker aligned before it
        decoder.reinit_feat()
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        segments = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame)
                    for s in decoder.seg() or []]  # None: the search did not reach the end
    except RuntimeError as err:
        return AlignError(ALIGN_FAILED, str(err))
    found = [(w, a, b) for w, a, b in segments if not _SPHINX_FILLER.match(w)]
    if [w for w, _, _ in found] != words:
        return AlignError(ALIGN_FAILED, f"aligned {len(found)} of {len(words)} words")
    return [(a / 100.0, (b + 1) / 100.0) for _, a, b in found]


def _sphinx_job(job: tuple[bytes, list[str]]) -> Times | AlignError:
    return sphinx_align(*job)


class PocketsphinxAligner:
    """Resampling runs here (torch); workers run pocketsphinx only. They are spawned, not
    forked: forking a process whose torch/OpenMP threads are running can deadlock."""

    name = "pocketsphinx"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None

    def align_batch(self, items):
        jobs = [(to_pcm16k(it.audio, it.sample_rate), it.words) for it in items]
        if self._pool is None:
            return [_sphinx_job(job) for job in jobs]
        return self._pool.map(_sphinx_job, jobs, chunksize=max(1, len(jobs) // (4 * self.workers)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()


# --------------------------------------------------------------------------- nemo
class NemoAligner:
    """CTC forced alignment with a NeMo model (``EncDecCTCModel`` or a hybrid's CTC head)."""

    name = "nemo"

    def __init__(self, model: str, batch_size: int, device: Optional[str] = None) -> None:
        import torch
        from nemo.collections.asr.models import ASRModel

        from ..nemo_models import NemoModel

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._loaded = NemoModel(model, ASRModel, self.device, "align.nemo_model")
        self.model = self._loaded.model
        self.batch_size = batch_size
        self.ctc = getattr(self.model, "ctc_decoder", None) or self.model.decoder
        self.vocabulary = list(self.ctc.vocabulary)
        self.blank = len(self.vocabulary)  # NeMo puts the CTC blank last
        self.tokenizer = getattr(self.model, "tokenizer", None)  # None for character models
        self.sample_rate = int(self.model.cfg.sample_rate)
        self.window_stride = float(self.model.cfg.preprocessor.window_stride)

    def _targets(self, words: list[str]) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of the transcript and, per word, its [first, last] token index."""
        ids: list[int] = []
        ranges = []
        for k, word in enumerate(words):
            if self.tokenizer is not None:
                word_ids = list(self.tokenizer.text_to_ids(word))
                unk = getattr(self.tokenizer, "unk_id", None)
                if not word_ids or (unk is not None and unk >= 0 and unk in word_ids):
                    raise AlignError(OOV, word)
            else:
                if k > 0 and " " in self.vocabulary:
                    ids.append(self.vocabulary.index(" "))
                if any(c not in self.vocabulary for c in word):
                    raise AlignError(OOV, word)
                word_ids = [self.vocabulary.index(c) for c in word]
            ranges.append((len(ids), len(ids) + len(word_ids) - 1))
            ids.extend(word_ids)
        return ids, ranges

    def align_batch(self, items):
        out: list[Times | AlignError] = []
        for b in range(0, len(items), self.batch_size):
            out.extend(self._align(items[b : b + self.batch_size]))
        return out

    def _align(self, items):
        import torchaudio.functional as AF

        torch = self.torch
        waves = [resample(it.audio, it.sample_rate, self.sample_rate) for it in items]
        lengths = torch.tensor([len(w) for w in waves])
        batch = torch.zeros(len(waves), int(lengths.max()))
        for i, w in enumerate(waves):
            batch[i, : len(w)] = torch.from_numpy(w)
        with torch.inference_mode():
            feats, feat_len = self.model.preprocessor(input_signal=batch.to(self.device),
                                                      length=lengths.to(self.device))
            encoded, enc_len = self.model.encoder(audio_signal=feats, length=feat_len)
            log_probs = self.ctc(encoder_output=encoded).float().cpu()
        results: list[Times | AlignError] = []
        for i, words in enumerate(it.words for it in items):
            frames = int(enc_len[i])
            stride = self.window_stride * round(int(feat_len[i]) / max(frames, 1))
            try:
                ids, ranges = self._targets(words)
                path, scores = AF.forced_align(log_probs[i : i + 1, :frames], torch.tensor([ids]),
                                               blank=self.blank)
            except AlignError as err:
                results.append(err)
                continue
            except RuntimeError as err:  # e.g. more tokens than frames
                results.append(AlignError(ALIGN_FAILED, str(err).splitlines()[0]))
                continue
            spans = AF.merge_tokens(path[0], scores[0].exp(), blank=self.blank)
            if len(spans) != len(ids):
                results.append(AlignError(ALIGN_FAILED, f"{len(spans)} token spans for {len(ids)} tokens"))
                continue
            results.append([(spans[a].start * stride, spans[z].end * stride) for a, z in ranges])
        return results


# --------------------------------------------------------------------------- running
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

    def metrics(self, params: Params) -> dict[str, Any]:
        cfg = params.align
        return {
            "scale": params.scale,
            "backend": cfg.backend,
            "model": {"pocketsphinx": "pocketsphinx en-us (bundled)", "nemo": cfg.nemo_model,
                      "given": "corpus timings"}[cfg.backend],
            "aligned": self.aligned,
            "aligned_total": sum(self.aligned.values()),
            "skipped": self.skipped,
            "skipped_total": sum(sum(v.values()) for v in self.skipped.values()),
            "boundary_error": self.errors.summary(),
            "truth_mismatch": self.truth_mismatch,
        }


def _truth_matches(truth: Sequence[dict[str, Any]], words: list[str]) -> bool:
    return bool(truth) and [normalize(w["word"]) for w in truth] == words


class GivenAligner:
    """The corpus's own timings (``words`` column of the prepared corpus)."""

    name = "given"

    def align_batch(self, items):
        return [self._given(it) for it in items]

    @staticmethod
    def _given(item: Item) -> Times | AlignError:
        if not item.truth:
            return AlignError(NO_TIMINGS, "the corpus has no word timings")
        if not _truth_matches(item.truth, item.words):
            return AlignError(WORD_MISMATCH, "corpus timings are for other words")
        return [(w["start"], w["end"]) for w in item.truth]


def make_aligner(cfg: AlignConfig):
    if cfg.backend == "pocketsphinx":
        return PocketsphinxAligner(workers=len(os.sched_getaffinity(0)))
    if cfg.backend == "nemo":
        return NemoAligner(cfg.nemo_model, cfg.batch_size)
    return GivenAligner()


def _align_rows(aligner, rows: list[dict[str, Any]], result: AlignResult, counts: Counter
                ) -> Iterator[dict[str, Any]]:
    spans = [transcript_words(r["text"]) for r in rows]
    words = [[normalize(s.word) for s in sp] for sp in spans]
    todo = [i for i, w in enumerate(words) if w]
    items = [Item(rows[i]["audio"], rows[i]["sample_rate"], words[i], rows[i]["words"]) for i in todo]
    found = dict(zip(todo, aligner.align_batch(items)))
    for i, row in enumerate(rows):
        outcome = found.get(i, AlignError(NO_WORDS, "transcript has no words"))
        if isinstance(outcome, AlignError):
            counts[outcome.reason] += 1
            log.warning("skip %s: %s", row["id"], outcome)
            continue
        truth = row["words"]
        if _truth_matches(truth, words[i]):
            result.errors.add(outcome, truth)
        elif truth:
            result.truth_mismatch += 1
        yield {
            "id": row["id"],
            "text": row["text"],
            "n_frames": n_frames(len(row["audio"]), row["sample_rate"]),
            "words": [{"word": s.word, "start": a, "end": b} for s, (a, b) in zip(spans[i], outcome)],
            "backend": aligner.name,
        }


def run_align(params: Params, corpus: str | Path, out: str | Path) -> AlignResult:
    """Align ``corpus/<split>`` for the training splits into ``out/<split>``."""
    corpus, out = Path(corpus), Path(out)
    aligner = make_aligner(params.align)
    result = AlignResult()
    try:
        with shards.staged_output(out) as tmp:
            for split in shards.TRAINING_SPLITS:
                counts: Counter[str] = Counter()
                rows = shards.iter_rows(corpus / split, columns=["id", "text", "audio", "sample_rate", "words"])
                with shards.ShardedWriter(tmp / split, FEATURES) as writer:
                    for window in shards.windows(rows, WINDOW):
                        writer.write_all(_align_rows(aligner, window, result, counts))
                    result.aligned[split] = writer.num_rows
                result.skipped[split] = dict(sorted(counts.items()))
                log.info("%s: %d aligned, %d skipped", split, result.aligned[split], sum(counts.values()))
            shards.write_split_index(tmp, shards.TRAINING_SPLITS)
    finally:
        if hasattr(aligner, "close"):
            aligner.close()
    return result
