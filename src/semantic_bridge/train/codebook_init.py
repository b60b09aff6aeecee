"""Codebook initialisation from the training data, before the first step."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..base.progress import Progress
from ..base.shards import iter_batches, load_split
from ..codec.model import BridgeCodec

log = logging.getLogger(__name__)


@torch.no_grad()
def init_codebooks(codec: BridgeCodec, train_dir: Path, frames: int, frames_per_step: float) -> dict:
    """k-means-initialise every codebook level that weight surgery did not fill, from the
    (randomly initialised, or surgery-initialised) encoder's latents of about ``frames`` training
    frames: whole utterances spread evenly over the split (every k-th row). Returns a summary."""
    counts = np.concatenate([b.column(0).to_numpy() for b in iter_batches(train_dir, columns=["n_frames"])])
    stride = max(1, int(counts.sum() // max(frames, 1)))
    device = next(codec.parameters()).device
    # memory-mapped: only the chosen rows' audio is read, not the whole split's
    rows = load_split(train_dir).select_columns(["audio"]).with_format("numpy")
    latents, total = [], 0
    progress = Progress("k-means init: encoding", int(min(frames, counts.sum())), "frame")
    for i in range(0, len(counts), stride):
        audio = torch.from_numpy(np.asarray(rows[i]["audio"], np.float32))[None, None].to(device)
        latent = codec.encode_latent(audio)[0].T  # [T, D]
        latents.append(latent)
        total += len(latent)
        progress.update(min(len(latent), progress.total - progress.n))
        if total >= frames:
            break
    progress.close()
    data = torch.cat(latents)[:frames]
    log.info("k-means init: clustering %d frames, level by level", len(data))
    levels = codec.quantizer.init_from_data(data, frames_per_step)
    log.info("k-means initialised codebook levels %s from %d training frames", levels, len(data))
    return {"levels": levels, "frames": int(len(data))}
