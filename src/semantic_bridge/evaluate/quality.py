"""eval_quality: how good is each bitrate? The standard resynthesis suite (as VERSA and
Codec-SUPERB report it) for the original audio and for every cumulative subset of codebooks
(CB0, CB0+1, CB0..2, ..., all 9), each with its bitrate; every subset decoded from the same codes.

Per row, over ``eval.quality.utterances`` test utterances:
- intrusive, against the original: STOI (``pystoi``) and wide-band PESQ (``pesq``) at 16 kHz,
  log-mel distance, SI-SNR, F0 RMSE in cents on frames voiced in both, voicing error and F0
  correlation (Praat's pitch tracker through ``parselmouth``), speaker similarity (CAM++ cosine);
- non-intrusive: DNSMOS P.835 overall quality (``speechmos``, Microsoft's models; one 10 s
  window of the clip looped to 10 s, see ``dnsmos_input``) and WER/CER of
  the embedded ASR (``eval.wer``).
The original row carries the non-intrusive metrics only (the intrusive ones are identities).

Baseline rows: a reference kyutai Mimi (``MimiModel`` from ``eval.quality.reference_mimi``)
decoded from its first 1, 2 and 8 codebooks -- at paper scale kyutai's Mimi at 137.5 / 275 /
1100 bit/s; at the embedded scale the tiny random Mimi, whose rows test machinery only.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..base.audio import resample
from ..base.files import staged_output, write_text, write_wav
from ..base.progress import Progress
from ..config import EvalQualityConfig, EvalWerConfig
from .asr import make_recognizer, transcribe_flagged
from ..codec.model import group_name
from .common import header, iter_split, load_codec, resynthesize, split_size
from .metrics import error_rates, has_words, si_snr
from .speaker import CamppSpeaker

log = logging.getLogger(__name__)
RATE = 16000  # STOI, PESQ-WB, DNSMOS, CAM++ and the ASR all read 16 kHz
INTRUSIVE = ("stoi", "pesq", "mel_distance", "si_snr_db", "f0_rmse_cents", "voicing_error", "f0_corr",
             "speaker_similarity")
NON_INTRUSIVE = ("dnsmos_ovrl",)
DNSMOS_SECONDS = 10.0  # DNSMOS P.835's input window


def dnsmos_input(audio16: np.ndarray) -> np.ndarray:
    """The clip as DNSMOS scores it here: clipped to [-1, 1] and, when shorter than the model's
    10 s window, looped (cyclically repeated) to exactly 10 s, so it is one window. speechmos
    itself doubles a short clip until it is 10 s long and then scores every 1 s hop of it (a
    2.2 s clip: 8 windows); one window of the same looped signal scores the same quality in an
    eighth of the time. Longer clips are passed unchanged (speechmos averages their windows)."""
    audio = np.clip(np.asarray(audio16, dtype=np.float32), -1, 1)
    need = int(DNSMOS_SECONDS * RATE)
    if 0 < len(audio) < need:
        audio = np.resize(audio, need)  # np.resize repeats the array cyclically
    return audio


def f0_track(audio16: np.ndarray) -> np.ndarray:
    """F0 in Hz every 10 ms (0 = unvoiced), Praat's autocorrelation tracker."""
    import parselmouth

    pitch = parselmouth.Sound(audio16.astype(np.float64), RATE).to_pitch(time_step=0.01, pitch_floor=60,
                                                                          pitch_ceiling=500)
    return pitch.selected_array["frequency"]


def f0_scores(ref: np.ndarray, est: np.ndarray) -> dict[str, Optional[float]]:
    """F0 RMSE (cents) and correlation on frames voiced in both; voicing decision error rate."""
    n = min(len(ref), len(est))
    ref, est = ref[:n], est[:n]
    voiced_r, voiced_e = ref > 0, est > 0
    both = voiced_r & voiced_e
    out: dict[str, Optional[float]] = {"voicing_error": float((voiced_r != voiced_e).mean()) if n else None}
    if both.sum() >= 2:
        cents = 1200 * np.log2(est[both] / ref[both])
        out["f0_rmse_cents"] = float(np.sqrt(np.mean(cents ** 2)))
        r = np.corrcoef(ref[both], est[both])[0, 1]
        out["f0_corr"] = float(r) if np.isfinite(r) else None
    else:
        out["f0_rmse_cents"] = out["f0_corr"] = None
    return out


def mel_distance(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of log10 mel spectrograms (80 bands, 1024-point FFT, hop 256)."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=1024, hop_length=256, n_mels=80)
    a, b = (mel(torch.from_numpy(np.ascontiguousarray(x, np.float32))).clamp(min=1e-5).log10() for x in (ref, est))
    return float((a - b).abs().mean())


class Scorer:
    """Every metric of one (reference, estimate) pair; models loaded once."""

    def __init__(self, wer: EvalWerConfig, speaker_model: str) -> None:
        from speechmos import dnsmos

        self.dnsmos = dnsmos
        self.asr = make_recognizer(wer)
        self.speaker = CamppSpeaker(speaker_model)

    def non_intrusive(self, est16: np.ndarray) -> dict[str, float]:
        return {"dnsmos_ovrl": float(self.dnsmos.run(dnsmos_input(est16), RATE)["ovrl_mos"])}

    def intrusive(self, ref: np.ndarray, est: np.ndarray, sample_rate: int, ref16: np.ndarray,
                  est16: np.ndarray, ref_f0: np.ndarray, ref_emb: np.ndarray) -> dict[str, Any]:
        from pesq import NoUtterancesError, pesq
        from pystoi import stoi

        try:
            pesq_wb: Optional[float] = float(pesq(RATE, ref16, est16, "wb"))
        except NoUtterancesError:  # an estimate with no speech-like activity
            pesq_wb = None
        emb = self.speaker.embed(est16, RATE)
        out = {"stoi": float(stoi(ref16, est16, RATE, extended=False)), "pesq": pesq_wb,
               "mel_distance": mel_distance(ref, est, sample_rate), "si_snr_db": si_snr(ref, est),
               "speaker_similarity": float(emb @ ref_emb / (np.linalg.norm(emb) * np.linalg.norm(ref_emb) + 1e-12))}
        out.update(f0_scores(ref_f0, f0_track(est16)))
        return out

    def close(self) -> None:
        self.asr.close()


def cumulative_rows(n_levels: int, n_semantic: int = 2) -> dict[str, list[int]]:
    """``cb0``, ``cb0_1``, ..., ``cb0_8``: the first k levels, k = 1..n; then, for the
    disentanglement table, the groups that are not a prefix: each later semantic level alone
    (``cb1``) and the acoustic levels alone (``cb2_8``)."""
    rows = {group_name(range(k)): list(range(k)) for k in range(1, n_levels + 1)}
    rows.update({group_name([k]): [k] for k in range(1, n_semantic)})
    rows[group_name(range(n_semantic, n_levels))] = list(range(n_semantic, n_levels))
    return rows


class ReferenceMimi:
    """transformers' ``MimiModel`` decoding from its first ``k`` codebooks."""

    def __init__(self, path: str) -> None:
        from transformers import MimiModel

        self.net = MimiModel.from_pretrained(path).eval()
        self.rate = self.net.config.sampling_rate
        self.bits = float(np.log2(self.net.config.codebook_size))
        self.frame_rate = float(self.net.config.frame_rate)

    @torch.no_grad()
    def resynthesize(self, audio: np.ndarray, sample_rate: int, ks: list[int]) -> list[np.ndarray]:
        wave = resample(audio, sample_rate, self.rate)
        x = torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None, None]
        codes = self.net.encode(x, num_quantizers=max(ks)).audio_codes
        out = []
        for k in ks:
            y = self.net.decode(codes[:, :k]).audio_values[0, 0, : x.shape[-1]].numpy()
            out.append(resample(y, self.rate, sample_rate))
        return out


def _mean(values: list[Optional[float]]) -> Optional[float]:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def run_quality(cfg: EvalQualityConfig, wer: EvalWerConfig, speaker_model: str, scale: str, corpus: str,
                codec_path: str, wav_dir: str, plots: str) -> dict[str, Any]:
    loaded = load_codec(codec_path)
    codec = loaded.codec
    rows_def = cumulative_rows(codec.n_levels, codec.n_semantic)
    mimi = ReferenceMimi(cfg.reference_mimi) if cfg.reference_mimi else None
    mimi_ks = [k for k in (1, 2, 8) if mimi is not None and k <= mimi.net.config.num_quantizers]
    scorer = Scorer(wer, speaker_model)
    scores: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    hyps: dict[str, list[str]] = defaultdict(list)
    refs: list[str] = []
    total = split_size(corpus, "test", cfg.utterances)
    progress = Progress("eval_quality", total, "utt")
    saved: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    skipped: Counter = Counter()
    capped: Counter = Counter()  # hypotheses cut at the ASR's token cap (decoding loops), per row
    rate = codec.sample_rate
    try:
        for n, row in enumerate(iter_split(corpus, "test", ["id", "text", "audio", "sample_rate"], cfg.utterances)):
            if not has_words(row["text"]):
                skipped["empty_reference"] += 1
                log.warning("skip %s: its transcript %r has no word after normalisation", row["id"], row["text"])
                progress.update()
                continue
            ref = np.asarray(row["audio"], np.float32)
            ref16 = resample(ref, row["sample_rate"], RATE)
            ref_f0, ref_emb = f0_track(ref16), scorer.speaker.embed(ref16, RATE)
            estimates: dict[str, np.ndarray] = {"original": ref}
            estimates.update(zip(rows_def, resynthesize(codec, ref, list(rows_def.values()))))
            if mimi is not None:
                estimates.update((f"mimi_{k}", y) for k, y in zip(mimi_ks, mimi.resynthesize(ref, rate, mimi_ks)))
            refs.append(row["text"])
            texts, cut = transcribe_flagged(scorer.asr, [(est, rate) for est in estimates.values()])
            for (name, est), text, was_cut in zip(estimates.items(), texts, cut, strict=True):
                est16 = resample(est, rate, RATE)
                hyps[name].append(text)
                capped[name] += int(was_cut)
                for key, value in scorer.non_intrusive(est16).items():
                    scores[name][key].append(value)
                if name != "original":
                    for key, value in scorer.intrusive(ref, est, rate, ref16, est16, ref_f0, ref_emb).items():
                        scores[name][key].append(value)
                if n < cfg.save_wavs:
                    saved[name].append((row["id"], est))
            progress.update()
    finally:
        scorer.close()
        progress.close()
    bitrate: dict[str, float] = {"original": 16.0 * rate}
    bitrate.update({name: codec.bitrate_bps(len(levels)) for name, levels in rows_def.items()})
    if mimi is not None:
        bitrate.update({f"mimi_{k}": k * mimi.bits * mimi.frame_rate for k in mimi_ks})
    table: dict[str, Any] = {}
    for name in bitrate:
        rates = error_rates(refs, hyps[name])
        table[name] = {"bitrate_bps": bitrate[name], "wer": rates.wer, "cer": rates.cer, "asr_capped": capped[name],
                       **{k: _mean(v) for k, v in scores[name].items()}}
        if name in rows_def:
            table[name]["codebooks"] = len(rows_def[name])
    with staged_output(wav_dir) as tmp:
        for name, clips in saved.items():
            for uid, audio in clips:
                write_wav(Path(tmp) / name / f"{uid.replace('/', '_')}.wav", audio, rate)
    _write_plots(table, Path(plots))
    return {**header(scale, codec=loaded.info(), asr={"backend": wer.backend, "model": wer.model},
                     speaker={"backend": "campplus", "model": speaker_model},
                     mos="DNSMOS P.835 (speechmos 0.0.1.1, Microsoft), one 10 s window: the clip looped to 10 s", pitch="Praat (parselmouth)",
                     reference_mimi={"model": cfg.reference_mimi,
                                     "note": "random weights: machinery only" if scale == "embedded" else None}),
            "utterances": len(refs), "skipped": dict(skipped),
            "rows": table}


def _write_plots(table: dict[str, Any], plots: Path) -> None:
    """``quality.csv`` (a row per subset) and ``quality.png``: each metric against bitrate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["wer", "cer", *INTRUSIVE, *NON_INTRUSIVE]
    header_line = "row,bitrate_bps," + ",".join(metrics)
    lines = [header_line] + [f"{name},{r['bitrate_bps']:g}," + ",".join(
        "" if r.get(m) is None else f"{r[m]:.6g}" for m in metrics) for name, r in table.items()]
    write_text(plots / "quality.csv", "\n".join(lines) + "\n")
    fig, axes = plt.subplots(3, 4, figsize=(14, 9))
    for ax, metric in zip(axes.ravel(), metrics):
        for group, colour in (("cb", "tab:blue"), ("mimi", "tab:orange")):
            pts = sorted((r["bitrate_bps"], r[metric]) for name, r in table.items()
                         if name.startswith("cb0" if group == "cb" else group) and r.get(metric) is not None)
            if pts:
                ax.plot(*zip(*pts), "o-", color=colour, label="bridge" if group == "cb" else "reference Mimi")
        original = table.get("original", {}).get(metric)
        if original is not None:
            ax.axhline(original, color="grey", ls="--", label="original")
        ax.set_title(metric)
        ax.set_xscale("log")
        ax.set_xlabel("bit/s")
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    plots.mkdir(parents=True, exist_ok=True)
    from ..base.files import atomic_path

    with atomic_path(plots / "quality.png") as tmp:
        fig.savefig(tmp, format="png", dpi=70, metadata={"Software": None})
    plt.close(fig)
