"""Distillation heads: linear maps from quantized latents to teacher feature spaces.

The LLM head reads CB0's quantized latent, the WavLM head the sum of the semantic levels
(CB0+CB1), as in DESIGN §1; both are trained with a cosine loss (``train.losses``).
Gradients reach the encoder through the quantizer's straight-through estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .quantizer import QuantizedResult


@dataclass
class HeadOutput:
    """llm [B, T, D_llm] predicted from CB0; wavlm [B, T, D_wavlm] from CB0+1."""

    llm: Tensor
    wavlm: Tensor


class DistillHeads(nn.Module):
    def __init__(self, dim: int, llm_dim: int, wavlm_dim: int, n_semantic: int = 2,
                 llm_levels: int = 1):
        super().__init__()
        self.llm_levels = list(range(llm_levels))  # CB0
        self.wavlm_levels = list(range(n_semantic))  # CB0+1
        self.llm = nn.Linear(dim, llm_dim)
        self.wavlm = nn.Linear(dim, wavlm_dim)

    def forward(self, q: QuantizedResult) -> HeadOutput:
        llm_in = q.latent(self.llm_levels).transpose(1, 2)
        wavlm_in = q.latent(self.wavlm_levels).transpose(1, 2)
        return HeadOutput(self.llm(llm_in), self.wavlm(wavlm_in))
