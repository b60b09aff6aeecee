"""The disentanglement report: where does each factor live? One table per codebook group --
CB0, CB1, CB0+1, CB2..8, all, and the pre-quantisation latent -- gathered from the evaluations'
metrics files (nothing is recomputed):

- content: WER of the group's resynthesis (``eval_quality``), next-word probe top-1 (``eval_probe``)
- prosody: F0 correlation of the resynthesis with the original (``eval_quality``)
- timbre:  speaker-verification EER of the group's embedding (``eval_eer``: mean-pooled, cosine)
           and speaker similarity of the resynthesis to the original (``eval_quality``)

A cell is None where the group has no such measurement (the latent is not decoded; the probe
reads codes). ``dvc metrics diff`` on ``metrics/disentanglement.json`` shows the whole story
between two experiments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..base.files import atomic_path

COLUMNS = ("wer", "probe_top1", "f0_corr", "speaker_eer", "speaker_similarity")
HIGHER_IS_MORE = {"wer": False, "probe_top1": True, "f0_corr": True, "speaker_eer": False,
                  "speaker_similarity": True}  # does a larger value mean more of the factor?


def _get(d: Optional[dict], *keys: str) -> Optional[float]:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return None if d is None else float(d)


def disentanglement_table(quality: dict, eer: dict, probe: dict, groups: list[str]) -> dict[str, dict]:
    """``{group: {column: value}}`` from the three metrics files."""
    table = {}
    for group in groups:
        row = quality.get("rows", {}).get("cb0_8" if group == "all" else group)
        table[group] = {
            "wer": _get(row, "wer"),
            "probe_top1": _get(probe, "accuracy", group, "top1"),
            "f0_corr": _get(row, "f0_corr"),
            "speaker_eer": _get(eer, "eer", group, "mean", "cosine", "eer"),
            "speaker_similarity": _get(row, "speaker_similarity"),
        }
    return table


def heat_map(table: dict[str, dict], path: Path) -> None:
    """Cells coloured by how much of the factor the group carries (each column scaled to its
    own range, direction per ``HIGHER_IS_MORE``), annotated with the values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(table)
    values = np.array([[np.nan if table[g][c] is None else table[g][c] for c in COLUMNS] for g in groups])
    shade = np.full_like(values, np.nan)
    for j, column in enumerate(COLUMNS):
        col = values[:, j]
        if np.isfinite(col).sum() >= 1:
            lo, hi = np.nanmin(col), np.nanmax(col)
            scaled = (col - lo) / (hi - lo) if hi > lo else np.full_like(col, 0.5)
            shade[:, j] = scaled if HIGHER_IS_MORE[column] else 1 - scaled
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(np.ma.masked_invalid(shade), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(len(groups)):
        for j in range(len(COLUMNS)):
            text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", color="w" if np.nan_to_num(shade[i, j]) < 0.5 else "k")
    ax.set_xticks(range(len(COLUMNS)), ["WER (content)", "probe top-1 (content)", "F0 corr (prosody)",
                                        "speaker EER (timbre)", "speaker sim (timbre)"], rotation=20, fontsize=8)
    ax.set_yticks(range(len(groups)), groups)
    ax.set_title("where each factor lives (bright = more of it)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def run_disentanglement(scale: str, quality: str, eer: str, probe: str, plot: str) -> dict[str, Any]:
    q, e, p = (json.loads(Path(f).read_text()) for f in (quality, eer, probe))
    groups = ["cb0", "cb1", "cb0_1", "cb2_8", "all", "latent"]
    table = disentanglement_table(q, e, p, groups)
    heat_map(table, Path(plot))
    return {"scale": scale, "sources": {"quality": quality, "eer": eer, "probe": probe},
            "codec": q.get("models", {}).get("codec"), "groups": table}
