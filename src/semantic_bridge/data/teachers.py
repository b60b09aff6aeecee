"""The ``wavlm`` and ``qwen`` stages: teacher features for every training split."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from semantic_bridge.config import Params
from semantic_bridge.data.extract import Dist, ExtractionResult, run_extraction
from semantic_bridge.data.shards import TRAINING_SPLITS


def _metrics(params: Params, model: str, layer: int, result: ExtractionResult) -> dict[str, Any]:
    return {
        "scale": params.scale,
        "model": model,
        "layer": layer,
        "rows": result.rows,
        "skipped": result.skipped,
        "skipped_total": sum(sum(v.values()) for v in result.skipped.values()),
        "units": result.units,
    }


def _run(params: Params, make_extractor: Callable, cfg, source: str | Path, out: str | Path,
         dist: Optional[Dist]) -> Optional[dict[str, Any]]:
    dist = dist or Dist.from_env()
    dist.init()
    try:
        extractor = make_extractor(cfg, dist.device)
        result = run_extraction(extractor, source, out, TRAINING_SPLITS, params.teachers.max_shard_size, dist)
    finally:
        dist.close()
    return None if result is None else _metrics(params, cfg.model, cfg.layer, result)


def run_wavlm(params: Params, corpus: str | Path, out: str | Path,
              dist: Optional[Dist] = None) -> Optional[dict[str, Any]]:
    """WavLM features of ``corpus/<split>`` into ``out/<split>``; metrics on rank 0, else None."""
    from semantic_bridge.data.wavlm import WavlmExtractor

    return _run(params, WavlmExtractor, params.teachers.wavlm, corpus, out, dist)


def run_llm(params: Params, aligned: str | Path, out: str | Path,
            dist: Optional[Dist] = None) -> Optional[dict[str, Any]]:
    """LLM hidden states on the frame grid for ``aligned/<split>``; metrics on rank 0."""
    from semantic_bridge.data.llm import LlmExtractor

    return _run(params, LlmExtractor, params.teachers.llm, aligned, out, dist)
