"""eval_eer: where does speaker identity live? Speaker verification on a VoxCeleb1-O style
trial list with utterance embeddings taken from the codec: the pre-quantisation latent,
CB0, CB0+1, CB2..CB8 and all levels (quantized latents), pooled over time (mean, mean+std),
scored by cosine and by a linear probe trained on the disjoint dev speakers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch

from ..base import shards
from ..base.errors import DataError
from ..base.evalsets import read_trials
from ..base.files import atomic_path, write_text
from ..base.progress import track
from ..codec.model import BridgeCodec
from ..config import EvalEerConfig
from .common import as_batch, header, iter_split, load_codec
from .speaker import CamppSpeaker, SpeakerModel
from .metrics import cosine_scores, eer, error_curve, min_dcf

log = logging.getLogger(__name__)

POOLINGS = ("mean", "mean_std")
SCORERS = ("cosine", "probe")
MIN_PROBE_SPEAKERS = 3  # a multinomial probe over fewer classes gives a degenerate embedding


@torch.no_grad()
def frame_features(codec: BridgeCodec, audio: np.ndarray) -> dict[str, np.ndarray]:
    """Per source, the frame sequence ``[T, D]``: ``latent`` (pre-quantisation) and the
    quantized latent of each codebook group (the sum of its levels' quantized latents)."""
    dev = next(codec.parameters()).device
    latent = codec.encode_latent(as_batch(audio, dev))
    q = codec.quantize(latent)
    out = {"latent": latent[0].T}
    for name, levels in codec.level_groups().items():
        out[name] = q.latent(levels)[0].T
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def pool(frames: np.ndarray, how: str) -> np.ndarray:
    """``[T, D]`` -> ``[D]`` (mean) or ``[2D]`` (mean and standard deviation over time)."""
    mean = frames.mean(0)
    return mean if how == "mean" else np.concatenate([mean, frames.std(0)])


REFERENCE = ("original", "embedding")  # the speaker model on the original audio


def embed_all(codec: BridgeCodec, rows: Iterable[tuple[str, np.ndarray]],
              reference: Optional[SpeakerModel] = None) -> tuple[list[str], dict]:
    """Keys and ``{(source, pooling): [N, D]}`` for ``(key, audio)`` rows; with ``reference``,
    also its embedding of the original audio under ``REFERENCE``."""
    keys, vecs = [], {}
    for key, audio in rows:
        keys.append(key)
        for source, frames in frame_features(codec, audio).items():
            for how in POOLINGS:
                vecs.setdefault((source, how), []).append(pool(frames, how))
        if reference is not None:
            vecs.setdefault(REFERENCE, []).append(reference.embed(audio, codec.sample_rate))
    return keys, {k: np.stack(v) for k, v in vecs.items()}


class LinearProbe:
    """A linear speaker classifier (multinomial logistic regression on standardised embeddings)
    trained on the dev speakers; trial utterances are scored by the cosine of their class-logit
    vectors: a linear map learnt on speakers disjoint from the trial list's."""

    def __init__(self, x: np.ndarray, speakers: list[str], c: float, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(),
                                   LogisticRegression(C=c, max_iter=2000, random_state=seed))
        self.model.fit(x, speakers)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function(x)


def score_trials(trials, index: dict[str, int], vecs: np.ndarray) -> np.ndarray:
    a = vecs[[index[t.path1] for t in trials]]
    b = vecs[[index[t.path2] for t in trials]]
    return cosine_scores(a, b)


def det_plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    """A DET plot (miss vs false-alarm probability on normal-deviate axes) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    clip = lambda p: norm.ppf(np.clip(p, 5e-4, 1 - 5e-4))  # noqa: E731
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, (p_fa, p_miss) in curves.items():
        ax.plot(clip(p_fa), clip(p_miss), label=label)
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([5e-4, 0.98])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false alarm probability (%)")
    ax.set_ylabel("miss probability (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def verification(scores: np.ndarray, labels: np.ndarray, cfg: EvalEerConfig) -> dict[str, float]:
    return {"eer": eer(scores, labels),
            "min_dcf": min_dcf(scores, labels, cfg.p_target, cfg.c_miss, cfg.c_fa)}


def run_eer(cfg: EvalEerConfig, scale: str, seed: int, prepared: str, codec_path: str,
            plots: str) -> dict[str, Any]:
    prepared = Path(prepared)
    trials = read_trials(prepared / "trials.txt")
    loaded = load_codec(codec_path)
    codec = loaded.codec
    audio_dir = prepared / "trial_audio"
    rows = ((r["path"], r["audio"]) for r in track(shards.iter_rows(audio_dir, columns=["path", "audio"]),
                                                   "eval_eer trial audio", shards.num_rows(audio_dir), "utt"))
    reference = CamppSpeaker(cfg.speaker_model)
    keys, trial_vecs = embed_all(codec, rows, reference)
    index = {k: i for i, k in enumerate(keys)}
    missing = sorted({p for t in trials for p in (t.path1, t.path2)} - set(index))
    if missing:
        raise DataError(f"{audio_dir}: no audio for {len(missing)} trial files, e.g. {missing[0]}")
    dev_rows = ((r["speaker"], r["audio"]) for r in
                iter_split(prepared / "corpus", "dev", ["speaker", "audio"]))
    dev_speakers, dev_vecs = embed_all(codec, dev_rows)
    labels = np.array([t.label for t in trials])

    n_dev = len(set(dev_speakers))
    scorers = SCORERS if n_dev >= MIN_PROBE_SPEAKERS else ("cosine",)
    if n_dev < MIN_PROBE_SPEAKERS:  # logged and recorded in the metrics, not silently dropped
        log.warning("probe scorer skipped: %d dev speaker(s), it needs %d (data.splits.dev_speakers)",
                    n_dev, MIN_PROBE_SPEAKERS)
    results: dict[str, Any] = {}
    bars, det_curves = [], {}
    for (source, how), vecs in trial_vecs.items():
        own = ("cosine",) if (source, how) == REFERENCE else scorers  # a verifier: cosine only
        if "probe" in own:
            probe = LinearProbe(dev_vecs[(source, how)], dev_speakers, cfg.probe_c, seed)
        for scorer in own:
            mapped = vecs if scorer == "cosine" else probe(vecs)
            scores = score_trials(trials, index, mapped)
            res = verification(scores, labels, cfg)
            results.setdefault(source, {}).setdefault(how, {})[scorer] = res
            bars.append(f"{source}/{how}/{scorer},{res['eer']:.6f},{res['min_dcf']:.6f}\n")
            p_miss, p_fa, _ = error_curve(scores, labels)
            det_curves.setdefault(source, {})[f"{how}, {scorer} (EER {100 * res['eer']:.1f} %)"] = (p_fa, p_miss)
            log.info("%s %s %s: EER %.4f minDCF %.4f", source, how, scorer, res["eer"], res["min_dcf"])
    plots = Path(plots)
    write_text(plots / "eer.csv", "source,eer,min_dcf\n" + "".join(bars))
    for source, curves in det_curves.items():
        det_plot(plots / "det" / f"{source}.png", curves, f"DET: {source}")
    return {**header(scale, codec=loaded.info(), probe="logistic regression on dev speakers",
                     reference={"name": reference.name, "model": reference.model,
                                "row": "original: the speaker model on the original audio"}),
            "trials": {"list": str(prepared / "trials.txt"), "target": int(labels.sum()),
                       "nontarget": int((1 - labels).sum())},
            "dev": {"utterances": len(dev_speakers), "speakers": n_dev},
            "scorers": list(scorers),
            "p_target": cfg.p_target, "c_miss": cfg.c_miss, "c_fa": cfg.c_fa,
            "eer": results}
