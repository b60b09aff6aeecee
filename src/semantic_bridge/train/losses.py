"""Training losses: multi-scale mel L1, masked cosine distillation, hinge GAN, feature matching."""

from __future__ import annotations

from typing import Sequence

import torch
import torchaudio
from torch import Tensor, nn


class MultiScaleMelLoss(nn.Module):
    """Mean over scales of L1 between log10 mel spectrograms (DAC's ``mel/loss``).

    One mel transform per window length (hop = window / 4, Hann window)."""

    def __init__(self, sample_rate: int, windows: Sequence[int], n_mels: Sequence[int]):
        super().__init__()
        self.mels = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=w, win_length=w, hop_length=w // 4,
                n_mels=m, power=1.0, center=True, norm="slaney", mel_scale="slaney",
            )
            for w, m in zip(windows, n_mels)
        )

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        """estimate, target: [B, 1, N] audio."""
        loss = estimate.new_zeros(())
        for mel in self.mels:
            x = mel(estimate.float()).clamp(min=1e-5).log10()
            y = mel(target.float()).clamp(min=1e-5).log10()
            loss = loss + (x - y).abs().mean()
        return loss / len(self.mels)


def masked_cosine_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of 1 - cos(pred, target) over frames where ``mask`` is true.

    pred, target: [B, T, D]; mask: [B, T] bool. Zero (with a gradient path) if no frame counts."""
    cos = nn.functional.cosine_similarity(pred.float(), target.float(), dim=-1, eps=1e-6)
    mask = mask.to(cos.dtype)
    return ((1.0 - cos) * mask).sum() / mask.sum().clamp(min=1.0)


def hinge_discriminator_loss(real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor]) -> Tensor:
    """EnCodec's hinge loss for the discriminator, mean over scales."""
    loss = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
               for r, f in zip(real_logits, fake_logits))
    return loss / len(real_logits)


def hinge_generator_loss(fake_logits: Sequence[Tensor]) -> Tensor:
    """``adv/gen_loss``: mean over scales of relu(1 - D(fake))."""
    return sum(torch.relu(1 - f).mean() for f in fake_logits) / len(fake_logits)


def feature_matching_loss(real_features: Sequence[Sequence[Tensor]],
                          fake_features: Sequence[Sequence[Tensor]]) -> Tensor:
    """``adv/feat_loss``: L1 between discriminator features, each layer normalised by the mean
    magnitude of the real features (EnCodec), mean over scales and layers."""
    total, count = 0.0, 0
    for real_scale, fake_scale in zip(real_features, fake_features):
        for r, f in zip(real_scale, fake_scale):
            r = r.detach()
            total = total + (r - f).abs().mean() / r.abs().mean().clamp(min=1e-8)
            count += 1
    return total / max(count, 1)
