"""Held-out numbers of a trained model, on the valid split (speakers unseen in training):
codebook usage per level, reconstruction from all levels and from the semantic levels alone,
and the distillation losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.errors import DataError
from ..base.shards import iter_rows, num_rows
from ..codec.heads import DistillHeads
from ..codec.model import BridgeCodec
from ..codec.stats import codebook_stats
from .losses import MultiScaleMelLoss, masked_cosine_loss


@torch.no_grad()
def heldout_metrics(codec: BridgeCodec, heads: DistillHeads, mel_loss: MultiScaleMelLoss,
                    valid_dir: Path, utterances: int) -> dict[str, Any]:
    """Over the first ``utterances`` rows of ``valid_dir`` (a merged split)."""
    codec.eval()
    heads.eval()
    device = next(codec.parameters()).device
    n = min(num_rows(valid_dir), utterances)
    if n == 0:
        raise DataError(f"{valid_dir}: no validation rows")
    semantic = list(range(codec.n_semantic))
    codes_per_level: list[list[np.ndarray]] = [[] for _ in range(codec.n_levels)]
    sums = {"mel/loss": 0.0, "mel/loss_semantic": 0.0, "distill/llm": 0.0, "distill/wavlm": 0.0}

    def tensor(x: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x)).to(device, dtype)[None]

    for row in iter_rows(valid_dir, 0, n, ["audio", "llm", "llm_mask", "wavlm"]):
        audio = tensor(row["audio"])[None]  # [1, 1, N]
        latent = codec.encode_latent(audio)
        q = codec.quantize(latent)
        for level in range(codec.n_levels):
            codes_per_level[level].append(q.codes[0, level].cpu().numpy())
        target = torch.nn.functional.pad(audio, (0, latent.shape[-1] * codec.hop - audio.shape[-1]))
        sums["mel/loss"] += float(mel_loss(codec.decode_latent(q.latent()), target))
        sums["mel/loss_semantic"] += float(mel_loss(codec.decode_latent(q.latent(semantic)), target))
        h = heads(q)
        llm, wavlm = heads.targets(tensor(row["llm"]), tensor(row["wavlm"]))
        sums["distill/llm"] += float(masked_cosine_loss(h.llm, llm, tensor(row["llm_mask"], torch.bool)))
        frames = torch.ones(1, latent.shape[-1], dtype=torch.bool, device=device)
        sums["distill/wavlm"] += float(masked_cosine_loss(h.wavlm, wavlm, frames))
    levels = {f"cb{k}": codebook_stats(np.concatenate(c), codec.books.size)
              for k, c in enumerate(codes_per_level)}
    return {"utterances": n, "losses": {k: v / n for k, v in sums.items()}, "codebooks": levels}
