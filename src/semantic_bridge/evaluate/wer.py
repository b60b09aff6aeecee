"""eval_wer: is content in the semantic codebooks? ASR word and character error rates on the
test split's original audio (the ceiling) and on the codec's resynthesis from all codebooks,
the semantic levels (CB0+1) and CB0."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Iterable, Iterator, Optional

from ..base.errors import DataError
from ..base.files import write_text
from ..base.progress import Progress
from ..base.shards import windows
from ..codec.model import group_name
from ..config import EvalWerConfig
from .asr import make_recognizer, transcribe_counted
from .common import header, iter_split, load_codec, resynthesize, split_size
from .metrics import error_rates, has_words

log = logging.getLogger(__name__)

WINDOW = 8  # utterances resynthesised and transcribed together (a progress line per window)


def wer_rows(n_levels: int, n_semantic: int) -> dict[str, Optional[list[int]]]:
    """Row name -> the levels decoded (None: the original audio)."""
    semantic = list(range(n_semantic))
    return {"original": None, "all": list(range(n_levels)), group_name(semantic): semantic, "cb0": [0]}


def with_words(rows: Iterable[dict[str, Any]], skipped: Counter) -> Iterator[dict[str, Any]]:
    """The rows whose ``text`` keeps a word after normalisation; the others counted under
    ``empty_reference``."""
    for row in rows:
        if has_words(row["text"]):
            yield row
        else:
            skipped["empty_reference"] += 1
            log.warning("skip %s: its transcript %r has no word after normalisation", row["id"], row["text"])


def run_wer(cfg: EvalWerConfig, scale: str, corpus: str, codec_path: str, plot: str) -> dict[str, Any]:
    loaded = load_codec(codec_path)
    codec = loaded.codec
    rows_def = wer_rows(codec.n_levels, codec.n_semantic)
    coded = {name: levels for name, levels in rows_def.items() if levels is not None}
    asr = make_recognizer(cfg, corpus)
    refs: list[str] = []
    hyps: dict[str, list[str]] = {name: [] for name in rows_def}
    skipped: Counter = Counter()
    capped: Counter = Counter()  # hypotheses cut at the ASR's token cap (decoding loops), per row
    rows_in = with_words(iter_split(corpus, "test", ["id", "text", "audio", "sample_rate"],
                                    cfg.max_utterances), skipped)
    progress = Progress("eval_wer", split_size(corpus, "test", cfg.max_utterances), "utt")
    rate = None
    try:
        for window in windows(rows_in, WINDOW):  # bounded memory: a window of audio at a time
            refs.extend(row["text"] for row in window)
            rate = window[0]["sample_rate"]
            # each utterance is encoded once and decoded from every subset of levels
            decoded = [dict(zip(coded, resynthesize(codec, row["audio"], list(coded.values()))))
                       for row in window]
            for name in rows_def:
                waves = [(out[name] if name in coded else row["audio"], row["sample_rate"])
                         for row, out in zip(window, decoded)]
                texts, n_capped = transcribe_counted(asr, waves)
                hyps[name].extend(texts)
                capped[name] += n_capped
            progress.update(len(refs) + sum(skipped.values()) - progress.n)  # rows read so far
    finally:
        asr.close()
        progress.close()
    if not refs:
        raise DataError(f"{corpus}/test: no utterances to score")
    rows = {}
    for name, levels in rows_def.items():
        rates = error_rates(refs, hyps[name]).to_json()
        rates["codebooks"] = None if levels is None else len(levels)
        rates["asr_capped"] = capped[name]
        rates["bitrate_bps"] = 16 * rate if levels is None else codec.bitrate_bps(len(levels))
        rows[name] = rates
        log.info("%s: WER %.3f CER %.3f (%d utterances)", name, rates["wer"], rates["cer"], len(refs))
    write_text(plot, "row,wer,cer,bitrate_bps\n" + "".join(
        f"{name},{r['wer']:.6f},{r['cer']:.6f},{r['bitrate_bps']:g}\n" for name, r in rows.items()))
    return {**header(scale, codec=loaded.info(), asr={"backend": asr.name, "model": asr.model},
                     normalizer="whisper EnglishTextNormalizer"),
            "utterances": len(refs), "skipped": dict(skipped), "rows": rows}
