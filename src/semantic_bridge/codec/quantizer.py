"""Split residual vector quantizer (Mimi's layout) with trainable codebooks.

Mimi quantizes one encoder latent twice: a *semantic* RVQ (here 2 levels: CB0, CB1, where
level 2 quantizes the residual of level 1) and an *acoustic* RVQ (7 levels: CB2..CB8) on
the same latent. The decoder gets the sum of both. The module layout follows transformers'
``MimiSplitResidualVectorQuantizer`` (bias-free 1x1 ``input_proj``/``output_proj`` per RVQ)
so that weight surgery is a plain key mapping.

Each level is a ``vector_quantize_pytorch.VectorQuantize``: EMA codebook updates, k-means
initialisation of codebooks that have not been initialised, dead-code re-initialisation from
the batch, straight-through gradients and the commitment loss. What this module adds is what
Mimi needs around it: the split, per-level outputs in latent space, and per-example level
masks (acoustic dropout and quantizer dropout drop levels from the *decoder input* per example).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize


@dataclass
class QuantizedResult:
    """What one quantizer pass gives.

    codes:      [B, K, T] int64, codebook index per level and frame
    levels:     [B, K, D, T] each level's quantized latent, in latent space (straight-through
                gradients in training); summing the levels in a subset gives that subset's
                decoder input
    commitment: scalar, mean commitment loss over levels (0 in eval)
    """

    codes: Tensor
    levels: Tensor
    commitment: Tensor

    def latent(self, levels: Optional[Sequence[int]] = None, mask: Optional[Tensor] = None) -> Tensor:
        """Decoder input [B, D, T]: the sum over ``levels`` (all by default).

        ``mask`` [B, K] (bool or 0/1) drops levels per example, as the dropout curricula do."""
        x = self.levels
        if levels is not None:
            x = x[:, list(levels)]
            if mask is not None:
                mask = mask[:, list(levels)]
        if mask is not None:
            x = x * mask[:, :, None, None].to(x.dtype)
        return x.sum(dim=1)


class ResidualQuantizer(nn.Module):
    """``n_levels`` residual VQ levels in a ``codebook_dim`` space projected from ``dim``.

    Shapes: latent [B, dim, T] -> codes [B, n_levels, T], levels [B, n_levels, dim, T].
    """

    def __init__(self, dim: int, codebook_dim: int, n_levels: int, codebook_size: int,
                 decay: float = 0.99, kmeans_iters: int = 10, dead_code_threshold: float = 0.0,
                 sync: bool = False):
        super().__init__()
        self.n_levels = n_levels
        # bias-free 1x1 convs, as in Mimi (so its weights copy over unchanged)
        self.input_proj = nn.Conv1d(dim, codebook_dim, 1, bias=False)
        self.output_proj = nn.Conv1d(codebook_dim, dim, 1, bias=False)
        self.layers = nn.ModuleList(
            VectorQuantize(
                dim=codebook_dim,
                codebook_size=codebook_size,
                decay=decay,
                kmeans_init=True,  # an uninitialised codebook is initialised from the first batch
                kmeans_iters=kmeans_iters,
                threshold_ema_dead_code=dead_code_threshold,
                commitment_weight=1.0,  # weighted by train.lambdas["vq/commitment"] outside
                rotation_trick=False,  # plain straight-through estimator
                sync_codebook=sync,
            )
            for _ in range(n_levels)
        )

    def forward(self, latent: Tensor, mask: Optional[Tensor] = None) -> QuantizedResult:
        """Quantize ``latent`` [B, D, T]; ``mask`` [B, T] marks real (non-padding) frames, which
        alone update the codebooks and enter the commitment loss."""
        if not self.training:
            blank = [i for i, vq in enumerate(self.layers) if not bool(vq._codebook.initted)]
            if blank:  # the library would silently k-means them on whatever is being encoded
                raise RuntimeError(f"codebook level(s) {blank} were never initialised: "
                                   "train (k-means on the first batch) before encoding")
        residual = self.input_proj(latent).transpose(1, 2)  # [B, T, C]
        codes, quantized, losses = [], [], []
        for vq in self.layers:
            q, idx, loss = vq(residual, mask=mask)
            residual = residual - q
            codes.append(idx)
            quantized.append(q)
            losses.append(loss)
        return self._result(codes, quantized, losses, latent)

    def _result(self, codes: list[Tensor], quantized: list[Tensor], losses: list[Tensor],
                like: Tensor) -> QuantizedResult:
        q = torch.stack(quantized, dim=1)  # [B, K, T, C]
        b, k, t, c = q.shape
        # output_proj is linear and bias-free: projecting each level separately sums exactly
        levels = self.output_proj(q.reshape(b * k, t, c).transpose(1, 2)).reshape(b, k, -1, t)
        commitment = torch.stack(losses).mean() if losses else like.new_zeros(())
        return QuantizedResult(torch.stack(codes, dim=1), levels, commitment)

    def embed(self, codes: Tensor) -> Tensor:
        """Codes [B, K', T] (the first K' levels, or any levels via ``dequantize``) -> levels
        [B, K', D, T] in latent space."""
        quantized = [vq.get_output_from_indices(codes[:, i]) for i, vq in enumerate(self.layers)
                     if i < codes.shape[1]]
        q = torch.stack(quantized, dim=1)
        b, k, t, c = q.shape
        return self.output_proj(q.reshape(b * k, t, c).transpose(1, 2)).reshape(b, k, -1, t)

    def codebook_usage(self) -> Tensor:
        """EMA cluster sizes [n_levels, codebook_size] (the counts dead-code re-init looks at)."""
        return torch.stack([vq._codebook.cluster_size[0] for vq in self.layers])


class SplitQuantizer(nn.Module):
    """Semantic RVQ (levels 0..S-1) and acoustic RVQ (levels S..K-1) on the same latent."""

    def __init__(self, dim: int, codebook_dim: int, semantic: int, acoustic: int,
                 codebook_size: int, decay: float = 0.99, kmeans_iters: int = 10,
                 dead_code_threshold: float = 0.0, sync: bool = False):
        super().__init__()
        kw = dict(codebook_size=codebook_size, decay=decay, kmeans_iters=kmeans_iters,
                  dead_code_threshold=dead_code_threshold, sync=sync)
        self.n_semantic = semantic
        self.n_levels = semantic + acoustic
        self.codebook_size = codebook_size
        self.semantic = ResidualQuantizer(dim, codebook_dim, semantic, **kw)
        self.acoustic = ResidualQuantizer(dim, codebook_dim, acoustic, **kw)

    def forward(self, latent: Tensor, mask: Optional[Tensor] = None) -> QuantizedResult:
        sem = self.semantic(latent, mask)
        aco = self.acoustic(latent, mask)
        n_s, n_a = self.n_semantic, self.n_levels - self.n_semantic
        commitment = (sem.commitment * n_s + aco.commitment * n_a) / self.n_levels
        return QuantizedResult(torch.cat([sem.codes, aco.codes], dim=1),
                               torch.cat([sem.levels, aco.levels], dim=1), commitment)

    @torch.no_grad()
    def init_from_data(self, latent: Tensor, frames_per_step: float) -> list[int]:
        """k-means initialisation of every level that is not initialised yet (weight surgery may
        have filled some), from ``latent`` [N, D]: many frames, not one batch -- a 2048-entry
        codebook k-means'd on one batch of ~150 frames repeats its samples and collapses.
        Level by level: each RVQ's first level on its projected latent, the next on what the
        levels before it leave. The initial cluster sizes are rescaled to one step's frames, the
        scale of the EMA counts that dead-code replacement compares with its threshold (k-means
        counts over N frames would keep every code "alive" for hundreds of steps).
        Returns the levels it initialised."""
        done = []
        offset = 0
        for rvq in (self.semantic, self.acoustic):
            residual = rvq.input_proj(latent.T[None])[0].T  # [N, C]
            for k, vq in enumerate(rvq.layers):
                cb = vq._codebook
                if not bool(cb.initted):
                    _local_kmeans_init(cb, residual)
                    scale = frames_per_step / residual.shape[0]
                    cb.cluster_size.mul_(scale)
                    cb.embed_avg.mul_(scale)  # embed = embed_avg / cluster_size: unchanged
                    done.append(offset + k)
                embed = cb.embed[0]
                residual = residual - embed[torch.cdist(residual, embed).argmin(-1)]
            offset += rvq.n_levels
        return done

    def dequantize(self, codes: Tensor, levels: Optional[Sequence[int]] = None) -> Tensor:
        """Decoder input [B, D, T] from codes [B, K, T], using only ``levels`` (all by default).

        Missing levels contribute zero; they are *not* decoded as code 0, which is a real entry."""
        levels = list(range(self.n_levels)) if levels is None else sorted(set(levels))
        bad = [lv for lv in levels if not 0 <= lv < self.n_levels]
        if bad:
            raise ValueError(f"levels {bad} out of range 0..{self.n_levels - 1}")
        if codes.shape[1] != self.n_levels:
            raise ValueError(f"codes have {codes.shape[1]} levels, expected {self.n_levels} "
                             "(use levels=... to decode a subset)")
        out = None
        for part, offset in ((self.semantic, 0), (self.acoustic, self.n_semantic)):
            mine = [lv - offset for lv in levels if offset <= lv < offset + part.n_levels]
            if not mine:
                continue
            # residual levels are independent lookups: embed the needed prefix, keep the chosen ones
            emb = part.embed(codes[:, offset:offset + max(mine) + 1])[:, mine].sum(dim=1)
            out = emb if out is None else out + emb
        if out is None:
            raise ValueError("levels: empty")
        return out


def say_kmeans_warning_once() -> None:
    """vector-quantize-pytorch warns (through loguru) once per level when a k-means batch has
    fewer vectors than codes; nine identical lines say nothing more than one. Keep the first,
    with what it means, and drop the repeats. Call once per process, before training."""
    from loguru import logger

    seen = []

    def keep(record) -> bool:
        if "duplicates will be sampled" not in record["message"]:
            return True
        if seen:
            return False
        seen.append(True)
        record["message"] += (" (every level that k-means initialises from this batch repeats "
                              "vectors; shown once for all levels)")
        return True

    logger.remove()
    logger.add(sys.stderr, filter=keep)


def _local_kmeans_init(cb: nn.Module, data: Tensor) -> None:
    """k-means-initialise one codebook on this process's ``data`` [N, C] alone. Under DDP the
    codebook is built to sync its k-means across ranks, but this runs before the process group
    exists; every rank sees the same frames and seed, and DDP broadcasts rank 0's buffers."""
    from vector_quantize_pytorch import vector_quantize_pytorch as vq_impl

    synced = cb.sample_fn, cb.kmeans_all_reduce_fn
    lib_cdist = vq_impl.cdist
    cb.sample_fn, cb.kmeans_all_reduce_fn = vq_impl.batched_sample_vectors, vq_impl.noop
    # k-means only ranks distances: torch's fused cdist gives the same assignments ~2.5x faster
    # on CPU than the library's einsum form at init size (20k frames x 2048 codes)
    vq_impl.cdist = _batched_cdist
    try:
        cb.init_embed_(data[None])
    finally:
        cb.sample_fn, cb.kmeans_all_reduce_fn = synced
        vq_impl.cdist = lib_cdist


def _batched_cdist(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distances ``[B, N, M]`` of ``x [B, N, D]`` to ``y [B, M, D]``."""
    return torch.cdist(x, y)

