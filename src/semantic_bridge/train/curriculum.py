"""Which codebook levels the decoder sees, per example and step.

Two separate knobs (DESIGN §1):
- acoustic dropout (``codebooks.dropout``): with probability p(step) an example keeps
  CB0+1 only, so the decoder learns to speak from the semantic codebooks; p ramps linearly
  from 0 to ``dropout`` over ``dropout_ramp_steps`` (constant if 0);
- quantizer dropout (``codebooks.quantizer_dropout``, Mimi's): with this probability an
  example keeps a random prefix of the acoustic levels (0..A-1 of them).
Semantic levels are always kept.
"""

from __future__ import annotations

import torch
from torch import Tensor


def acoustic_dropout_probability(step: int, dropout: float, ramp_steps: int) -> float:
    if ramp_steps <= 0:
        return dropout
    return dropout * min(1.0, step / ramp_steps)


def bypass_mask(batch: int, quantization_rate: float, level_mask: Tensor,
                generator: torch.Generator) -> Tensor:
    """Bool [batch]: examples the decoder gets unquantized (Mimi quantizes only part of the time,
    ``quantization_rate`` = the quantized share). Never an example whose levels are being
    dropped: CB0+1-only decoding is learnt from quantized codes."""
    unquantized = torch.rand(batch, generator=generator) >= quantization_rate
    return unquantized & level_mask.all(dim=1).cpu()


def level_mask(batch: int, n_semantic: int, n_acoustic: int, p_acoustic: float,
               p_quantizer: float, generator: torch.Generator) -> Tensor:
    """Bool [batch, n_semantic + n_acoustic]: True = the decoder sees this level."""
    n = n_semantic + n_acoustic
    kept = torch.full((batch,), n_acoustic, dtype=torch.long)  # acoustic levels kept
    quant = torch.rand(batch, generator=generator) < p_quantizer
    prefix = torch.randint(0, n_acoustic, (batch,), generator=generator)
    kept = torch.where(quant, prefix, kept)
    drop_all = torch.rand(batch, generator=generator) < p_acoustic
    kept = torch.where(drop_all, torch.zeros_like(kept), kept)
    acoustic_index = torch.arange(n)[None, :] - n_semantic
    return acoustic_index < kept[:, None]  # semantic levels have index < 0: always kept
