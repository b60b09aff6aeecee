"""Forced alignment with pocketsphinx: the US-English acoustic model and CMU dictionary the pip
package ships (``Decoder.set_align_text``). Words the dictionary lacks are skipped as ``oov``:
there is no offline grapheme-to-phoneme."""

from __future__ import annotations

import re

from semantic_bridge.base.audio import to_pcm16k
from semantic_bridge.base.errors import Skip
from semantic_bridge.base.pool import WorkerPool

from .common import ALIGN_FAILED, OOV, Item, Outcome

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


def sphinx_align(job: tuple[bytes, list[str]]) -> Outcome:
    """Forced alignment of ``words`` to 16 kHz PCM ``(pcm, words)`` (100 frames/s)."""
    pcm, words = job
    decoder = _sphinx_decoder()
    missing = [w for w in words if decoder.lookup_word(w) is None]
    if missing:
        return Skip(OOV, ", ".join(sorted(set(missing))[:5]))
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
        return Skip(ALIGN_FAILED, str(err))
    found = [(w, a, b) for w, a, b in segments if not _SPHINX_FILLER.match(w)]
    if [w for w, _, _ in found] != words:
        return Skip(ALIGN_FAILED, f"aligned {len(found)} of {len(words)} words")
    return [(a / 100.0, (b + 1) / 100.0) for _, a, b in found]


class PocketsphinxAligner:
    """Resampling runs here (torch); the workers run pocketsphinx only."""

    name = "pocketsphinx"

    def __init__(self, workers: int) -> None:
        self.pool = WorkerPool(workers)

    def align_batch(self, items: list[Item]) -> list[Outcome]:
        return self.pool.map(sphinx_align, [(to_pcm16k(it.audio, it.sample_rate), it.words)
                                            for it in items])

    def close(self) -> None:
        self.pool.close()
