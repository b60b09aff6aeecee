"""Forced alignment with pocketsphinx: the US-English acoustic model and CMU dictionary the pip
package ships (``Decoder.set_align_text``). Words the dictionary lacks are skipped as ``oov``:
there is no offline grapheme-to-phoneme.

Confidence check: forced alignment fits *any* word sequence to the audio (21 wrong words on a
3 s clip align "successfully"). So the same audio is also decoded by a free phone loop (the
package's phone LM). Over the frames of the aligned words, the phone loop's acoustic score per
frame beats the forced path's by a small margin when the words are the ones spoken and by a
large one when they are not; above ``max_gap`` the utterance is skipped as ``text_mismatch``.
Scores are pocketsphinx's acoustic log-scores (natural log of the scaled scores its Python API
returns) times 1000, per frame; on the embedded corpus, matching transcripts give 1.8-5.6
and another utterance's transcript 4.2-8.5 (measured, README).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from semantic_bridge.base.audio import to_pcm16k
from semantic_bridge.base.errors import Skip
from semantic_bridge.base.pool import WorkerPool

from .common import ALIGN_FAILED, OOV, TEXT_MISMATCH, Aligned, Item, Outcome

_SPHINX_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
_decoders: dict = {}  # one of each per worker process


def _decoder(kind: str):
    if kind not in _decoders:
        import pocketsphinx
        from pocketsphinx import Decoder

        if kind == "align":
            # Forced alignment needs the final state reached: default beams prune it away for
            # about 1 utterance in 3 of the embedded corpus (British espeak voices vs. the US
            # model); with no pruning 1-2 % fail. The search graph is one sentence: cheap.
            _decoders[kind] = Decoder(lm=None, samprate=16000, loglevel="FATAL", beam=1e-300,
                                      wbeam=1e-300, pbeam=1e-300, fwdflat=False, bestpath=False)
        else:  # a free phone loop, the unconstrained reference of the confidence check
            phones = Path(pocketsphinx.__file__).parent / "model" / "en-us" / "en-us-phone.lm.bin"
            _decoders[kind] = Decoder(lm=None, allphone=str(phones), samprate=16000,
                                      loglevel="FATAL", beam=1e-60, wbeam=1e-60, pbeam=1e-60,
                                      lw=1.0, fwdflat=False, bestpath=False)
    return _decoders[kind]


def _frame_scores(decoder, n_frames: int) -> np.ndarray:
    """Per-frame acoustic log-score (x1000) of the decoder's best path: each segment's score
    spread evenly over its frames."""
    out = np.zeros(n_frames)
    for seg in decoder.seg() or []:
        a, b = seg.start_frame, min(seg.end_frame + 1, n_frames)
        if b > a:
            out[a:b] = 1000.0 * math.log(max(seg.ascore, 1e-300)) / (b - a)
    return out


def _decode(decoder, pcm: bytes) -> None:
    decoder.reinit_feat()  # no cepstral-mean state from the previous utterance: order-free
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def sphinx_align(job: tuple[bytes, list[str], float]) -> Outcome:
    """Forced alignment of ``words`` to 16 kHz PCM (100 frames/s), checked against a free phone
    loop; ``job`` is ``(pcm, words, max_gap)``."""
    pcm, words, max_gap = job
    align = _decoder("align")
    missing = [w for w in words if align.lookup_word(w) is None]
    if missing:
        return Skip(OOV, ", ".join(sorted(set(missing))[:5]))
    try:
        align.set_align_text(" ".join(words))
        _decode(align, pcm)
        segments = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame)
                    for s in align.seg() or []]  # None: the search did not reach the end
    except RuntimeError as err:
        return Skip(ALIGN_FAILED, str(err))
    found = [(w, a, b) for w, a, b in segments if not _SPHINX_FILLER.match(w)]
    if [w for w, _, _ in found] != words:
        return Skip(ALIGN_FAILED, f"aligned {len(found)} of {len(words)} words")
    n = align.n_frames()
    forced = _frame_scores(align, n)
    free = _decoder("free")
    _decode(free, pcm)
    loop = _frame_scores(free, n)
    in_words = np.zeros(n, bool)
    for _, a, b in found:
        in_words[a : b + 1] = True
    gap = float((loop - forced)[in_words].mean())
    if gap > max_gap:
        return Skip(TEXT_MISMATCH, f"phone loop beats the forced alignment by {gap:.2f} per frame "
                                   f"(> align.pocketsphinx_max_gap {max_gap})")
    return Aligned([(a / 100.0, (b + 1) / 100.0) for _, a, b in found], gap)


class PocketsphinxAligner:
    """Resampling runs here (torch); the workers run pocketsphinx only."""

    name = "pocketsphinx"

    def __init__(self, workers: int, max_gap: float) -> None:
        self.pool = WorkerPool(workers)
        self.max_gap = max_gap

    def align_batch(self, items: list[Item]) -> list[Outcome]:
        return self.pool.map(sphinx_align, [(to_pcm16k(it.audio, it.sample_rate), it.words, self.max_gap)
                                            for it in items])

    def close(self) -> None:
        self.pool.close()
