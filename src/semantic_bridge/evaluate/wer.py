"""eval_wer: is content in CB0+1? ASR word and character error rates on the test split's
original audio (the ceiling) and on the codec's resynthesis from all codebooks, CB0+1 and CB0."""

from __future__ import annotations

import logging
from typing import Any

from ..config import Params
from ..data.shards import windows
from .asr import make_recognizer
from .common import EvalDataError, header, iter_split, load_codec, resynthesize_subsets, write_text
from .metrics import error_rates

log = logging.getLogger(__name__)

# row name -> codebook levels decoded (None: the original audio; []: all levels)
ROWS = {"original": None, "all": [], "cb01": [0, 1], "cb0": [0]}
WINDOW = 64  # utterances resynthesised and transcribed together


def run_wer(params: Params, corpus: str, codec_path: str, plot: str) -> dict[str, Any]:
    cfg = params.eval.wer
    loaded = load_codec(codec_path)
    codec = loaded.codec
    asr = make_recognizer(cfg, corpus)
    refs: list[str] = []
    hyps: dict[str, list[str]] = {name: [] for name in ROWS}
    rows_in = iter_split(corpus, "test", ["id", "text", "audio", "sample_rate"], cfg.max_utterances)
    try:
        for window in windows(rows_in, WINDOW):  # bounded memory: a window of audio at a time
            refs.extend(row["text"] for row in window)
            coded = {name: levels for name, levels in ROWS.items() if levels is not None}
            # each utterance is encoded once and decoded from every subset of levels
            decoded = [dict(zip(coded, resynthesize_subsets(codec, row["audio"],
                                                            [lv or None for lv in coded.values()])))
                       for row in window]
            for name in ROWS:
                waves = [(row["audio"] if name not in coded else out[name], row["sample_rate"])
                         for row, out in zip(window, decoded)]
                hyps[name].extend(asr.transcribe(waves))
    finally:
        asr.close()
    if not refs:
        raise EvalDataError(f"{corpus}/test: no utterances to score")
    rows = {}
    for name, levels in ROWS.items():
        rates = error_rates(refs, hyps[name]).to_json()
        n = None if levels is None else len(levels or range(codec.n_levels))
        rates["codebooks"] = n
        rates["bitrate_bps"] = 16 * params.data.sample_rate if n is None else loaded.bitrate_bps(n)
        rows[name] = rates
        log.info("%s: WER %.3f CER %.3f (%d utterances)", name, rates["wer"], rates["cer"], len(refs))
    write_text(plot, "row,wer,cer,bitrate_bps\n" + "".join(
        f"{name},{r['wer']:.6f},{r['cer']:.6f},{r['bitrate_bps']:g}\n" for name, r in rows.items()))
    return {**header(params, codec=loaded.info(), asr={"backend": asr.name, "model": asr.model},
                     normalizer="whisper EnglishTextNormalizer"),
            "utterances": len(refs), "rows": rows}
