"""Distillation heads: linear maps from quantized latents to teacher feature spaces.

The LLM head reads CB0's quantized latent, the WavLM head the sum of the semantic levels
(CB0+CB1), as in DESIGN §1; both are trained with a cosine loss (``train.losses``).
Gradients reach the encoder through the quantizer's straight-through estimator.

Targets are standardised per dimension with the training split's mean and standard deviation
(``set_teacher_stats``; buffers, so checkpoints carry them). Raw LLM hidden states share one
large direction (massive activations): two random frames of the embedded SmolLM2 teacher have
cosine 0.66, so a head that outputs a constant vector already scores a cosine loss of ~0.2 and
the loss says little about content. After standardisation a constant scores ~1.0 and only
frame-specific information lowers the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .quantizer import QuantizedResult


@dataclass
class HeadOutput:
    """llm [B, T, D_llm] predicted from CB0; wavlm [B, T, D_wavlm] from CB0+1 (standardised
    teacher space)."""

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
        for name, d in (("llm", llm_dim), ("wavlm", wavlm_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(d))
            self.register_buffer(f"{name}_std", torch.ones(d))

    @torch.no_grad()
    def set_teacher_stats(self, stats: dict[str, tuple[Tensor, Tensor]]) -> None:
        """``{"llm": (mean, std), "wavlm": (mean, std)}``, each [D]."""
        for name, (mean, std) in stats.items():
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_std").copy_(std.clamp(min=1e-6))

    def targets(self, llm: Tensor, wavlm: Tensor) -> tuple[Tensor, Tensor]:
        """Raw teacher features [B, T, D] -> the standardised targets the heads predict."""
        return ((llm - self.llm_mean) / self.llm_std, (wavlm - self.wavlm_mean) / self.wavlm_std)

    def forward(self, q: QuantizedResult) -> HeadOutput:
        llm_in = q.latent(self.llm_levels).transpose(1, 2)
        wavlm_in = q.latent(self.wavlm_levels).transpose(1, 2)
        return HeadOutput(self.llm(llm_in), self.wavlm(wavlm_in))
