"""eval_swap: does swapping move timbre but keep words? For pairs (A, B) of test utterances by
different speakers, decode A's first k codebooks with B's others, for each k of
``eval.swap.content_levels`` (SpeechTokenizer's one-shot conversion table): ASR WER of the swap
against A's transcript, the speaker similarity of the swap to A and to B, and the originals'
A-to-B similarity (the floor: what "sounds like B" can reach from A's side)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..base.errors import DataError
from ..base.files import staged_output, write_text, write_wav
from ..codec.model import group_name
from ..config import EvalSwapConfig, EvalWerConfig
from .asr import make_recognizer, transcribe_counted
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


def swap_rows(content_levels: list[int]) -> dict[str, int]:
    """Row name (the content group taken from A) -> its level count, in ascending order."""
    return {group_name(list(range(k))): k for k in sorted(content_levels)}


def run_swap(cfg: EvalSwapConfig, wer: EvalWerConfig, scale: str, seed: int, corpus: str,
             codec_path: str, wav_dir: str, plot: Optional[str] = None) -> dict[str, Any]:
    loaded = load_codec(codec_path)
    codec = loaded.codec
    dev = next(codec.parameters()).device
    settings = swap_rows(cfg.content_levels)
    if max(settings.values()) >= codec.n_levels:
        raise DataError(f"eval.swap.content_levels {cfg.content_levels}: the codec has {codec.n_levels} levels")
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
    rate = codec.sample_rate
    swaps: dict[str, list[np.ndarray]] = {name: [] for name in settings}
    hyps: dict[str, list[str]] = {}
    capped: dict[str, int] = {}
    try:
        with torch.no_grad():
            codes = {i: codec.encode(as_batch(rows[i]["audio"], dev)) for i in needed}
            embeds = {i: speaker.embed(rows[i]["audio"], rows[i]["sample_rate"]) for i in needed}
            for a, b in pairs:  # every setting from the same codes
                n = min(len(rows[a]["audio"]), len(rows[b]["audio"]))
                for name, k in settings.items():
                    audio = codec.voice_swap(codes[a], codes[b], k)[0, 0]
                    swaps[name].append(audio[:n].float().cpu().numpy())
        for name in settings:
            hyps[name], capped[name] = transcribe_counted(asr, [(s, rate) for s in swaps[name]])
    finally:
        asr.close()
    sims_ab = np.array([float(cosine_scores(embeds[a][None], embeds[b][None])[0]) for a, b in pairs])
    table: dict[str, Any] = {}
    for name, k in settings.items():
        sims_a, sims_b = [], []
        for (a, b), audio in zip(pairs, swaps[name], strict=True):
            e = speaker.embed(audio, rate)
            sims_a.append(float(cosine_scores(e[None], embeds[a][None])[0]))
            sims_b.append(float(cosine_scores(e[None], embeds[b][None])[0]))
        rates = error_rates([rows[a]["text"] for a, _ in pairs], hyps[name])
        to_a, to_b = np.array(sims_a), np.array(sims_b)
        table[name] = {"content_levels": k, "content_bitrate_bps": codec.bitrate_bps(k),
                       "wer_vs_a": rates.wer, "cer_vs_a": rates.cer, "asr_capped": capped[name],
                       "similarity_to_a": float(to_a.mean()), "similarity_to_b": float(to_b.mean()),
                       "closer_to_b_fraction": float((to_b > to_a).mean())}
        log.info("swap %s: WER vs A %.3f; similarity to A %.3f, to B %.3f (originals A-B %.3f)",
                 name, rates.wer, to_a.mean(), to_b.mean(), sims_ab.mean())
    with staged_output(wav_dir) as tmp:  # a few pairs to listen to
        for p, (a, b) in enumerate(pairs[: cfg.save_wavs]):
            write_wav(Path(tmp) / f"pair{p:02d}_A.wav", rows[a]["audio"], rate)
            write_wav(Path(tmp) / f"pair{p:02d}_B.wav", rows[b]["audio"], rate)
            for name in settings:
                write_wav(Path(tmp) / f"pair{p:02d}_swap_{name}.wav", swaps[name][p], rate)
        write_text(Path(tmp) / "pairs.tsv", "pair\tA\tB\tA_text\tsetting\tswap_asr\n" + "".join(
            f"{p:02d}\t{rows[a]['id']}\t{rows[b]['id']}\t{rows[a]['text']}\t{name}\t{hyps[name][p]}\n"
            for p, (a, b) in enumerate(pairs[: cfg.save_wavs]) for name in settings))
    floor = float(sims_ab.mean())
    if plot:
        write_text(plot, "setting,content_levels,content_bitrate_bps,wer_vs_a,similarity_to_a,"
                         "similarity_to_b,a_to_b_originals\n" + "".join(
            f"{name},{r['content_levels']},{r['content_bitrate_bps']:g},{r['wer_vs_a']:.6f},"
            f"{r['similarity_to_a']:.6f},{r['similarity_to_b']:.6f},{floor:.6f}\n" for name, r in table.items()))
    return {**header(scale, codec=loaded.info(), asr={"backend": asr.name, "model": asr.model},
                     speaker={"backend": speaker.name, "model": speaker.model}),
            "pairs": len(pairs), "skipped": {"empty_reference": scorable.count(False)},
            "content_levels": sorted(cfg.content_levels),
            "a_to_b_originals": floor, "rows": table}
