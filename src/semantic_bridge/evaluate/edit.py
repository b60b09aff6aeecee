"""eval_edit: text-based audio editing through the codec. For a test utterance A with its word
alignment and an edit of its transcript (one word replaced by another word of the corpus),
take the new word's content codebooks (CB0..CB{k-1}) from an aligned occurrence in another
utterance (the donor, another speaker when one exists), splice them over the old word's frames,
repeat A's own voice codebooks over the new span (nearest-frame stretch of the old word's
voice codes), and decode. Scored with the embedded ASR against the *edited* transcript: WER,
whether the new word is recognised, whether the other words survive; the speaker similarity of
the edit to A's original; and the same for a naive baseline, a crossfaded waveform splice of
the donor word. Edits that cannot be made are counted skips with a reason."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.errors import DataError
from ..base.files import staged_output, write_text, write_wav
from ..base.frames import FRAME_RATE
from ..base.progress import Progress
from ..config import EvalEditConfig, EvalSwapConfig, EvalWerConfig
from .asr import make_recognizer
from .common import as_batch, header, iter_split, load_codec
from .metrics import cosine_scores, error_rates, normalize
from .speaker import make_speaker_model

log = logging.getLogger(__name__)

SKIP_REASONS = ("edge", "not_aligned", "same_word", "no_frames")


@dataclass(frozen=True)
class Occurrence:
    """One aligned word: utterance id, speaker, word index and its time span in seconds."""

    uid: str
    speaker: str
    index: int
    start: float
    end: float


@dataclass(frozen=True)
class Edit:
    a: str  # utterance id of A
    position: int  # index of the replaced word in A's aligned words
    old: str
    new: str
    donor: Occurrence


def word_key(word: str) -> str:
    """The vocabulary key of a transcript word: Whisper-normalised, one token (else '')."""
    tokens = normalize(word).split()
    return tokens[0] if len(tokens) == 1 else ""


def frame_span(start: float, end: float, n_frames: int) -> tuple[int, int]:
    """The frames ``[f0, f1)`` a word spanning ``[start, end)`` s touches (80 ms frames, frame t
    covers [t/12.5, (t+1)/12.5)), clipped to the utterance; empty when it touches none."""
    f0 = min(n_frames, max(0, math.floor(start * FRAME_RATE)))
    f1 = min(n_frames, math.ceil(end * FRAME_RATE))
    return f0, max(f0, f1)


def stretch_index(n_old: int, n_new: int) -> np.ndarray:
    """Nearest-frame map of ``n_new`` output frames onto ``n_old`` input frames (repeat or drop)."""
    return np.minimum((np.arange(n_new) * n_old) // n_new, n_old - 1)


def splice_codes(codes_a: torch.Tensor, span_a: tuple[int, int], codes_d: torch.Tensor,
                 span_d: tuple[int, int], content_levels: int) -> torch.Tensor:
    """Codes ``[1, K, T_A - len(span_a) + len(span_d)]``: A's frames outside ``span_a``; over the
    new span (the donor word's length) the donor's content levels ``< content_levels`` and A's
    voice levels of the old span, stretched to the new length."""
    (a0, a1), (d0, d1) = span_a, span_d
    if a1 <= a0 or d1 <= d0:
        raise ValueError(f"empty span: A {span_a}, donor {span_d}")
    n_new = d1 - d0
    voice = codes_a[:, content_levels:, a0:a1][..., torch.from_numpy(stretch_index(a1 - a0, n_new))]
    middle = torch.cat([codes_d[:, :content_levels, d0:d1], voice], dim=1)
    return torch.cat([codes_a[..., :a0], middle, codes_a[..., a1:]], dim=-1)


def crossfade_splice(a: np.ndarray, span_a: tuple[int, int], donor: np.ndarray,
                     span_d: tuple[int, int], fade: int) -> np.ndarray:
    """The naive baseline: A's samples before and after ``span_a`` around the donor's samples of
    ``span_d``, joined by linear crossfades of ``fade`` samples (shortened for short pieces)."""
    head, mid, tail = a[: span_a[0]], donor[span_d[0] : span_d[1]], a[span_a[1] :]

    def join(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = min(fade, len(x), len(y))
        if n == 0:
            return np.concatenate([x, y])
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        return np.concatenate([x[:-n], x[-n:] * (1 - ramp) + y[:n] * ramp, y[n:]])

    return join(join(head, mid), tail).astype(np.float32)


def word_correct(reference_words: list[str], hypothesis: str) -> list[bool]:
    """Per reference word (raw words, each normalising to one token): whether jiwer's alignment
    of the normalised hypothesis matches it exactly."""
    import jiwer

    ref = [normalize(w) for w in reference_words]
    out = jiwer.process_words(" ".join(ref), normalize(hypothesis) or "<empty>")
    ok = [False] * len(ref)
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                ok[i] = True
    return ok


def plan_edits(test: list[dict[str, Any]], pool: dict[str, list[Occurrence]], n: int, seed: int,
               vocabulary: list[str]) -> tuple[list[Edit], Counter]:
    """Up to ``n`` seeded edits and the skips met on the way: a random word position of a random
    test utterance (the first and last words are refused: ``edge``) and a random vocabulary word
    (refused when no aligned occurrence outside A exists: ``not_aligned``; or when it is the old
    word: ``same_word``). Donors by another speaker are preferred. Stops after ``20 n`` draws."""
    rng = np.random.default_rng(seed)
    edits: list[Edit] = []
    skipped: Counter = Counter()
    for _ in range(20 * n):
        if len(edits) == n:
            break
        row = test[rng.integers(len(test))]
        words = row["words"]
        pos = int(rng.integers(len(words)))
        new = vocabulary[rng.integers(len(vocabulary))]
        old = word_key(words[pos]["word"])
        if pos == 0 or pos == len(words) - 1:
            skipped["edge"] += 1
            continue
        if new == old:
            skipped["same_word"] += 1
            continue
        found = [o for o in pool.get(new, []) if o.uid != row["id"]]
        if not found:
            skipped["not_aligned"] += 1
            continue
        other = [o for o in found if o.speaker != row["speaker"]]
        donor = (other or found)[rng.integers(len(other or found))]
        edits.append(Edit(row["id"], pos, words[pos]["word"], new, donor))
    return edits, skipped


def run_edit(cfg: EvalEditConfig, wer: EvalWerConfig, swap: EvalSwapConfig, scale: str, seed: int,
             corpus: str, aligned: str, codec_path: str, wav_dir: str) -> dict[str, Any]:
    loaded = load_codec(codec_path)
    codec = loaded.codec
    if not 1 <= cfg.content_levels < codec.n_levels:
        raise DataError(f"eval.edit.content_levels {cfg.content_levels}: the codec has {codec.n_levels} levels")
    dev = next(codec.parameters()).device
    rate = codec.sample_rate
    speakers, words_in_text = {}, set()
    for split in ("train", "valid", "test"):
        for m in iter_split(corpus, split, ["id", "speaker", "text"]):
            speakers[m["id"]] = m["speaker"]
            words_in_text.update(m["text"].split())
    pool: dict[str, list[Occurrence]] = {}
    test: list[dict[str, Any]] = []
    for split in ("train", "valid", "test"):
        for row in iter_split(aligned, split, ["id", "words"]):
            if not row["words"]:
                continue
            for i, w in enumerate(row["words"]):
                key = word_key(w["word"])
                if key and w["end"] > w["start"]:
                    pool.setdefault(key, []).append(Occurrence(row["id"], speakers[row["id"]], i, w["start"], w["end"]))
            if split == "test":
                test.append({**row, "speaker": speakers[row["id"]]})
    if not test:
        raise DataError(f"{aligned}/test: no aligned utterances to edit")
    # the vocabulary the edits draw from: every transcript word of the corpus, aligned or not
    vocabulary = sorted({word_key(w) for w in words_in_text} - {""})
    edits, skipped = plan_edits(test, pool, cfg.edits, seed, vocabulary)
    if not edits:
        raise DataError(f"eval_edit: no edit could be made ({dict(skipped)})")
    needed = {e.a for e in edits} | {e.donor.uid for e in edits}
    audio: dict[str, np.ndarray] = {}
    for split in ("train", "valid", "test"):
        for m in iter_split(corpus, split, ["id", "audio", "sample_rate"]):
            if m["id"] in needed:
                if m["sample_rate"] != rate:
                    raise DataError(f"{m['id']}: {m['sample_rate']} Hz, the codec runs at {rate} Hz")
                audio[m["id"]] = np.asarray(m["audio"], np.float32)
    words_of = {row["id"]: row["words"] for row in test}
    speaker = make_speaker_model(swap)
    asr = make_recognizer(wer, corpus)
    fade = int(cfg.crossfade_ms / 1000 * rate)
    done: list[dict[str, Any]] = []
    outputs: dict[str, list[np.ndarray]] = {"codec_edit": [], "waveform_splice": [], "codec_resynthesis": []}
    progress = Progress("eval_edit", len(edits), "edit")
    try:
        with torch.no_grad():
            codes = {uid: codec.encode(as_batch(audio[uid], dev)) for uid in needed}
            for e in edits:
                a_words = words_of[e.a]
                w = a_words[e.position]
                ca, cd = codes[e.a], codes[e.donor.uid]
                span_a = frame_span(w["start"], w["end"], ca.shape[-1])
                span_d = frame_span(e.donor.start, e.donor.end, cd.shape[-1])
                if span_a[1] <= span_a[0] or span_d[1] <= span_d[0]:
                    skipped["no_frames"] += 1
                    progress.update()
                    continue
                spliced = splice_codes(ca, span_a, cd, span_d, cfg.content_levels)
                edited = codec.decode(spliced)[0, 0].float().cpu().numpy()
                resyn = codec.decode(ca)[0, 0, : len(audio[e.a])].float().cpu().numpy()
                samples_a = (int(w["start"] * rate), int(w["end"] * rate))
                samples_d = (int(e.donor.start * rate), int(e.donor.end * rate))
                baseline = crossfade_splice(audio[e.a], samples_a, audio[e.donor.uid], samples_d, fade)
                outputs["codec_edit"].append(edited)
                outputs["waveform_splice"].append(baseline)
                outputs["codec_resynthesis"].append(resyn)
                raw = [x["word"] for x in a_words]
                done.append({"edit": e, "original_words": raw,
                             "edited_words": raw[: e.position] + [e.new] + raw[e.position + 1 :]})
                progress.update()
        hyps = {name: asr.transcribe([(x, rate) for x in xs]) for name, xs in outputs.items()}
    finally:
        asr.close()
        progress.close()
    if not done:
        raise DataError(f"eval_edit: no edit could be made ({dict(skipped)})")
    ref_embed = {d["edit"].a: speaker.embed(audio[d["edit"].a], rate) for d in done}
    rows: dict[str, Any] = {}
    for name, xs in outputs.items():
        target = "original_words" if name == "codec_resynthesis" else "edited_words"
        refs = [" ".join(d[target]) for d in done]
        rates = error_rates(refs, hyps[name])
        edited_ok, others = [], []
        for d, hyp in zip(done, hyps[name], strict=True):
            ok = word_correct(d[target], hyp)
            edited_ok.append(ok[d["edit"].position])
            others.extend(ok[: d["edit"].position] + ok[d["edit"].position + 1 :])
        sims = [float(cosine_scores(speaker.embed(x, rate)[None], ref_embed[d["edit"].a][None])[0])
                for d, x in zip(done, xs, strict=True)]
        rows[name] = {"scored_against": "the original transcript" if target == "original_words" else "the edited transcript",
                      "wer": rates.wer, "cer": rates.cer,
                      "edited_word_accuracy": float(np.mean(edited_ok)),
                      "other_words_accuracy": float(np.mean(others)),
                      "speaker_similarity_to_a": float(np.mean(sims))}
        log.info("%s: WER %.3f, edited word %.3f, other words %.3f, similarity to A %.3f", name,
                 rates.wer, rows[name]["edited_word_accuracy"], rows[name]["other_words_accuracy"],
                 rows[name]["speaker_similarity_to_a"])
    with staged_output(wav_dir) as tmp:  # a few edits to listen to
        lines = ["edit\tA\tdonor\tposition\told\tnew\tedited_transcript\tcodec_edit_asr\twaveform_splice_asr\n"]
        for k, d in enumerate(done[: cfg.save_wavs]):
            e = d["edit"]
            write_wav(Path(tmp) / f"edit{k:02d}_A.wav", audio[e.a], rate)
            write_wav(Path(tmp) / f"edit{k:02d}_donor.wav", audio[e.donor.uid], rate)
            write_wav(Path(tmp) / f"edit{k:02d}_edit.wav", outputs["codec_edit"][k], rate)
            write_wav(Path(tmp) / f"edit{k:02d}_baseline.wav", outputs["waveform_splice"][k], rate)
            lines.append(f"{k:02d}\t{e.a}\t{e.donor.uid}\t{e.position}\t{e.old}\t{e.new}\t"
                         f"{' '.join(d['edited_words'])}\t{hyps['codec_edit'][k]}\t{hyps['waveform_splice'][k]}\n")
        write_text(Path(tmp) / "edits.tsv", "".join(lines))
    return {**header(scale, codec=loaded.info(), asr={"backend": asr.name, "model": asr.model},
                     speaker={"backend": speaker.name, "model": speaker.model}),
            "edits": len(done), "requested": cfg.edits, "skipped": {r: skipped[r] for r in SKIP_REASONS},
            "content_levels": cfg.content_levels, "crossfade_ms": cfg.crossfade_ms,
            "other_speaker_donors": sum(d["edit"].donor.speaker != speakers[d["edit"].a] for d in done),
            "rows": rows}
