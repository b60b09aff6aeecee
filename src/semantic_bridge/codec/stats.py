"""Codebook statistics computed from codes (never typed in)."""

from __future__ import annotations

import math

import numpy as np


def codebook_stats(codes: np.ndarray, size: int) -> dict[str, float]:
    """Usage of one codebook from its codes (any shape, values in [0, size); -1 = padding).

    usage: fraction of the ``size`` entries that occur; dead: entries that never occur;
    perplexity: exp(entropy) of the empirical code distribution (``size`` if uniform, 1 if
    a single code)."""
    codes = np.asarray(codes).ravel()
    codes = codes[codes >= 0]
    if codes.size == 0:
        raise ValueError("codebook_stats: no codes")
    if codes.max() >= size:
        raise ValueError(f"codebook_stats: code {int(codes.max())} >= codebook size {size}")
    counts = np.bincount(codes, minlength=size)
    p = counts[counts > 0] / codes.size
    entropy = float(-(p * np.log(p)).sum())
    used = int((counts > 0).sum())
    return {"usage": used / size, "used": used, "dead": size - used,
            "perplexity": math.exp(entropy)}
