"""eval_swap: does swapping move timbre but keep words? For pairs (A, B) of test utterances by
different speakers, decode A's content codebooks (CB0 or CB0+1) with B's other codebooks; ASR
WER of the swap against A's transcript, and the speaker similarity of the swap to A and to B."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..base.errors import DataError
from ..base.files import staged_output, write_text, write_wav
from ..config import EvalSwapConfig, EvalWerConfig
from .asr import make_recognizer
from .common import as_batch, header, iter_split, load_codec
from .metrics import cosine_scores, error_rates, has_words
from .speaker import make_speaker_model

log = logging.getLogger(__name__)


def pick_pairs(speakers: list[str], n: int, seed: int,
               scorable: Optional[list[bool]] = None) -> list[tuple[int, int]]:
    """``n`` distinct ordered pairs (a, b) of row indices whose speakers differ (fewer when the
    split has fewer); a pure function of the seed. Only rows with ``scorable[a]`` can be A (the
    swap is scored against A's transcript)."""
    rng = np.random.default_rng(seed)
    ok = scorable or [True] * len(speakers)
    candidates = [(a, b) for a in range(len(speakers)) for b in range(len(speakers))
                  if speakers[a] != speakers[b] and ok[a]]
    if not candidates:
        raise DataError("voice swap needs utterances by at least 2 speakers in the test split")
    chosen = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(chosen)]


def run_swap(cfg: EvalSwapConfig, wer: EvalWerConfig, scale: str, seed: int, corpus: str,
             codec_path: str, wav_dir: str) -> dict[str, Any]:
    loaded = load_codec(codec_path)
    codec = loaded.codec
    dev = next(codec.parameters()).device
    # metadata first; audio only for the utterances the pairs use
    meta = list(iter_split(corpus, "test", ["speaker", "text"]))
    scorable = [has_words(m["text"]) for m in meta]
    if not all(scorable):
        log.warning("%d test utterances have no word after normalisation: never used as A",
                    scorable.count(False))
    pairs = pick_pairs([m["speaker"] for m in meta], cfg.pairs, seed, scorable)
    needed = sorted({i for p in pairs for i in p})
    rows = {}
    for i, row in enumerate(iter_split(corpus, "test", ["id", "speaker", "text", "audio", "sample_rate"])):
        if i in needed:
            rows[i] = row
    speaker = make_speaker_model(cfg)
    asr = make_recognizer(wer, corpus)
    swaps, sims_a, sims_b, sims_ab = [], [], [], []
    rate = codec.sample_rate
    try:
        with torch.no_grad():
            codes = {i: codec.encode(as_batch(rows[i]["audio"], dev)) for i in needed}
            embeds = {i: speaker.embed(rows[i]["audio"], rows[i]["sample_rate"]) for i in needed}
            for a, b in pairs:
                audio = codec.voice_swap(codes[a], codes[b], cfg.content_levels)[0, 0]
                n = min(len(rows[a]["audio"]), len(rows[b]["audio"]))
                swaps.append(audio[:n].float().cpu().numpy())
        hyps = asr.transcribe([(s, rate) for s in swaps])
    finally:
        asr.close()
    for (a, b), audio in zip(pairs, swaps, strict=True):
        e = speaker.embed(audio, rate)
        sims_a.append(float(cosine_scores(e[None], embeds[a][None])[0]))
        sims_b.append(float(cosine_scores(e[None], embeds[b][None])[0]))
        sims_ab.append(float(cosine_scores(embeds[a][None], embeds[b][None])[0]))
    with staged_output(wav_dir) as tmp:  # a few pairs to listen to
        for k, ((a, b), audio) in enumerate(zip(pairs[: cfg.save_wavs], swaps, strict=False)):
            write_wav(Path(tmp) / f"pair{k:02d}_A.wav", rows[a]["audio"], rate)
            write_wav(Path(tmp) / f"pair{k:02d}_B.wav", rows[b]["audio"], rate)
            write_wav(Path(tmp) / f"pair{k:02d}_swap.wav", audio, rate)
        write_text(Path(tmp) / "pairs.tsv", "pair\tA\tB\tA_text\tswap_asr\n" + "".join(
            f"{k:02d}\t{rows[a]['id']}\t{rows[b]['id']}\t{rows[a]['text']}\t{hyps[k]}\n"
            for k, (a, b) in enumerate(pairs[: cfg.save_wavs])))
    rates = error_rates([rows[a]["text"] for a, _ in pairs], hyps)
    sims_a, sims_b = np.array(sims_a), np.array(sims_b)
    log.info("swap: WER vs A %.3f; similarity to A %.3f, to B %.3f", rates.wer, sims_a.mean(), sims_b.mean())
    return {**header(scale, codec=loaded.info(), asr={"backend": asr.name, "model": asr.model},
                     speaker={"backend": speaker.name, "model": speaker.model}),
            "pairs": len(pairs), "skipped": {"empty_reference": scorable.count(False)},
            "content_levels": cfg.content_levels,
            "content_bitrate_bps": codec.bitrate_bps(cfg.content_levels),
            "wer_vs_a": rates.wer, "cer_vs_a": rates.cer,
            "similarity": {"to_a": float(sims_a.mean()), "to_b": float(sims_b.mean()),
                           "a_to_b_originals": float(np.mean(sims_ab)),
                           "closer_to_b_fraction": float((sims_b > sims_a).mean())}}
