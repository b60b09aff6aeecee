"""Multi-scale STFT discriminator (EnCodec's MS-STFTD), sizes from ``train.discriminator``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torchaudio
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass
class DiscriminatorOutput:
    """logits: one [B, 1, T', F'] map per scale; features: per scale, each layer's activations."""

    logits: list[Tensor]
    features: list[list[Tensor]]


class StftDiscriminator(nn.Module):
    """One scale: complex STFT (real, imag as channels) -> 2D conv stack -> logit map.

    Dilations grow along time, strides halve frequency, as in EnCodec."""

    def __init__(self, n_fft: int, filters: int, dilations: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.spec = torchaudio.transforms.Spectrogram(
            n_fft=n_fft, win_length=n_fft, hop_length=n_fft // 4, power=None,
            normalized=True, center=False,
        )
        convs = [weight_norm(nn.Conv2d(2, filters, (3, 9), padding=(1, 4)))]
        for d in dilations:
            convs.append(weight_norm(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2),
                                               dilation=(d, 1), padding=(d, 4))))
        convs.append(weight_norm(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.out = weight_norm(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, audio: Tensor) -> tuple[Tensor, list[Tensor]]:
        z = self.spec(audio.float().squeeze(1))  # [B, F, T] complex
        x = torch.stack([z.real, z.imag], dim=1).transpose(2, 3)  # [B, 2, T, F]
        features = []
        for conv in self.convs:
            x = self.act(conv(x))
            features.append(x)
        return self.out(x), features


class MultiScaleStftDiscriminator(nn.Module):
    def __init__(self, n_ffts: Sequence[int], filters: int):
        super().__init__()
        self.scales = nn.ModuleList(StftDiscriminator(n, filters) for n in n_ffts)

    def forward(self, audio: Tensor) -> DiscriminatorOutput:
        """audio [B, 1, N]"""
        logits, features = [], []
        for scale in self.scales:
            lg, ft = scale(audio)
            logits.append(lg)
            features.append(ft)
        return DiscriminatorOutput(logits, features)
