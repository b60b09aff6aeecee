"""The ``wavlm`` and ``qwen`` stages: teacher features for every training split.

The ``qwen`` stage is named after the paper-scale teacher; its code is the model-agnostic
``llm.py`` (any causal LM by name or path: Qwen2.5-1.5B, or SmolLM2 at the embedded scale).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from semantic_bridge.base import shards
from semantic_bridge.base.shards import TRAINING_SPLITS
from semantic_bridge.config import LlmConfig, WavlmConfig

from .extract import Dist, run_extraction


def frame_cosine(split_dir: Path, column: str, rows: int = 200, pairs: int = 5000) -> dict[str, Any]:
    """How informative a teacher is: the mean cosine between random pairs of its frames (over
    the first ``rows`` utterances; masked LLM frames left out). Near 1 the frames share one
    direction and a cosine-distilled student learns little beyond it (random-weight WavLM: 0.77)."""
    mask_col = "llm_mask" if column == "llm" else None
    frames = []
    for row in shards.iter_rows(split_dir, 0, rows, [column] + ([mask_col] if mask_col else [])):
        x = row[column].astype(np.float32)
        frames.append(x[np.asarray(row[mask_col], bool)] if mask_col else x)
    x = np.concatenate(frames) if frames else np.zeros((0, 1), np.float32)
    if len(x) < 2:
        return {"random_pair_cosine": None, "frames": int(len(x))}
    a, b = np.random.default_rng(0).integers(0, len(x), (2, pairs))
    norms = np.linalg.norm(x, axis=1) + 1e-9
    cos = (x[a] * x[b]).sum(1) / (norms[a] * norms[b])
    return {"random_pair_cosine": round(float(cos[a != b].mean()), 4), "frames": int(len(x))}


def _run(make_extractor: Callable, cfg: Union[WavlmConfig, LlmConfig], scale: str,
         source: str | Path, out: str | Path, max_shard_size: str,
         dist: Optional[Dist]) -> Optional[dict[str, Any]]:
    dist = dist or Dist.from_env()
    dist.init()
    try:
        extractor = make_extractor(cfg, dist.device)
        result = run_extraction(extractor, source, out, TRAINING_SPLITS, max_shard_size, dist)
    finally:
        dist.close()
    if result is None:  # not rank 0
        return None
    column = "wavlm" if make_extractor.name == "wavlm" else "llm"
    # what made the features: model, type, layer, dim (+ the Whisper window), as the output records
    made_by = {k: v for k, v in extractor.identity().items() if k != "stage"}
    return {
        "scale": scale,
        **made_by,
        "informativeness": frame_cosine(Path(out) / "train", column),
        "rows": result.rows,
        "skipped": result.skipped,
        "skipped_total": sum(sum(v.values()) for v in result.skipped.values()),
        "units": result.units,
    }


def run_wavlm(cfg: WavlmConfig, scale: str, corpus: str | Path, out: str | Path,
              max_shard_size: str, dist: Optional[Dist] = None) -> Optional[dict[str, Any]]:
    """WavLM features of ``corpus/<split>`` into ``out/<split>``; metrics on rank 0, else None."""
    # oneDNN (CPU) caches a compiled primitive per input shape, up to 1024 of them; every new
    # batch length is a new shape, so on CPU memory grew with the corpus (measured: +430 MB
    # from 375 to 1500 utterances, +46 MB with the cache off). A small cache keeps it flat.
    # Read when oneDNN first runs: set here, before any model runs. Set it yourself to override.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")
    from .wavlm import WavlmExtractor

    return _run(WavlmExtractor, cfg, scale, corpus, out, max_shard_size, dist)


def run_llm(cfg: LlmConfig, scale: str, aligned: str | Path, out: str | Path,
            max_shard_size: str, dist: Optional[Dist] = None) -> Optional[dict[str, Any]]:
    """LLM hidden states on the frame grid for ``aligned/<split>``; metrics on rank 0."""
    from .llm import LlmExtractor

    return _run(LlmExtractor, cfg, scale, aligned, out, max_shard_size, dist)
