"""Evaluation metrics: by hand and against independent computations (sklearn's ROC curve,
brute force over thresholds, jiwer on hand-normalised text)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from semantic_bridge.evaluate.metrics import (cosine_scores, eer, error_curve, error_rates,
                                              min_dcf, normalize)


def sklearn_eer(scores, labels) -> float:
    """EER from sklearn's ROC: interpolate where fnr - fpr changes sign (an independent route)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    d = fnr - fpr  # falls from 1 to -1 along sklearn's decreasing thresholds
    i = int(np.argmax(d <= 0))
    if d[i] == 0:
        return float(fpr[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa) -> float:
    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    best = np.inf
    for th in np.concatenate([np.unique(scores), [np.inf]]):
        accept = scores >= th
        p_miss = np.mean(~accept[labels])
        p_fa = np.mean(accept[~labels])
        best = min(best, c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target))
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def test_eer_and_min_dcf_by_hand():
    # perfectly separated: no errors at the right threshold
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    assert min_dcf([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    # perfectly inverted: every threshold errs on one side completely
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(1.0)
    # targets 0.6, 0.4; non-targets 0.5, 0.3: at th 0.5 miss 1/2, fa 1/2 -> EER 0.5
    assert eer([0.6, 0.4, 0.5, 0.3], [1, 1, 0, 0]) == pytest.approx(0.5)
    # 4 targets / 4 non-targets, one of each on the wrong side: miss = fa = 1/4 at th 0.5
    scores = [0.9, 0.8, 0.7, 0.45, 0.55, 0.3, 0.2, 0.1]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    assert eer(scores, labels) == pytest.approx(0.25)
    # minDCF at p_target 0.5 (normaliser 0.5): best is miss 1/4 fa 0 or miss 0 fa 1/4 -> 0.125/0.5
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(0.25)
    # p_target 0.01: accepting the non-target costs 0.99 * 1/4; missing a target 0.01 * 1/4
    # -> reject the low target (miss 1/4, fa 0): 0.0025 / 0.01 = 0.25
    assert min_dcf(scores, labels, p_target=0.01) == pytest.approx(0.25)


def test_error_curve_ends_and_ties():
    p_miss, p_fa, th = error_curve([0.5, 0.5, 0.5, 0.1], [1, 0, 1, 0])
    assert (p_miss[0], p_fa[0]) == (0.0, 1.0) and (p_miss[-1], p_fa[-1]) == (1.0, 0.0)
    # tied scores move together: no threshold splits the three 0.5s
    assert list(th) == [0.1, 0.5, np.inf]
    assert np.all(np.diff(p_miss) >= 0) and np.all(np.diff(p_fa) <= 0)


@pytest.mark.parametrize("seed", range(6))
def test_eer_and_min_dcf_match_independent_computations_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    labels = rng.random(n) < rng.uniform(0.2, 0.8)
    labels[:2] = [True, False]
    scores = rng.normal(size=n) + labels * rng.uniform(0, 3)
    if seed % 2:  # coarse scores: many ties
        scores = np.round(scores, 1)
    assert eer(scores, labels) == pytest.approx(sklearn_eer(scores, labels), abs=1e-9)
    for p_target, c_miss, c_fa in ((0.01, 1, 1), (0.05, 1, 1), (0.5, 2, 1)):
        assert min_dcf(scores, labels, p_target, c_miss, c_fa) == pytest.approx(
            brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa))


def test_verification_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="both target and non-target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        eer([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="labels"):
        eer([0.1, 0.2], [2, 0])
    with pytest.raises(ValueError, match="p_target"):
        min_dcf([0.1, 0.2], [1, 0], p_target=1.0)


def test_cosine_scores():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    assert cosine_scores(a, b) == pytest.approx([0.0, 1.0, 0.0])


def test_whisper_normaliser_and_error_rates():
    # Whisper's English normaliser: case, punctuation, British spelling, numbers
    assert normalize("Hello, World!") == "hello world"
    assert normalize("The colour of twenty-five apples.") == "the color of 25 apples"
    r = error_rates(["It was warm before dinner."], ["it was worm before dinner"])
    assert r.wer == pytest.approx(1 / 5) and r.reference_words == 5
    assert r.cer == pytest.approx(1 / len("it was warm before dinner"))
    # corpus level: errors over all reference words, not a mean of utterance rates
    r = error_rates(["a b c d", "e f"], ["a b c d", ""])
    assert r.wer == pytest.approx(2 / 6) and r.utterances == 2
    with pytest.raises(ValueError, match="empty after normalisation"):
        error_rates(["uh, um!"], ["a"])  # fillers are removed by the normaliser
    with pytest.raises(ValueError, match="hypotheses"):
        error_rates(["a"], [])
