"""A Vocos-style iSTFT head: an optional replacement for Mimi's SEANet waveform decoder.

``codec.decoder: istft`` keeps Mimi's decoder front (the x2 upsampling to 25 Hz and the causal
decoder transformer) and replaces ``decoder_seanet`` (transposed convolutions up to 24 kHz) by
this head, as Vocos and WavTokenizer do: the 25 Hz states are split into ``upsample`` STFT
frames each (a 1x1 convolution, then a reshape: 100 Hz at hop 240), refined by causal
ConvNeXt blocks, and mapped to a log-magnitude and a phase per frequency bin; ``torch.istft``
makes the waveform. The network predicts spectra directly instead of synthesising samples
through four upsampling stages, which is why such heads learn faster.

Latency: the STFT is centred (``center=True``), so a sample depends on the frames whose
``n_fft = 4 * hop`` window covers it: up to 20 ms (two 100 Hz frames) of look-ahead at the
embedded sizes, on top of Mimi's. The convolutions themselves are causal.

Shapes: states [B, C, T2] (T2 = 2 x codec frames) -> audio [B, 1, T2 * upsample * hop].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MAX_LOG_MAGNITUDE = 4.6  # exp(4.6) = 100: Vocos's magnitude clip


class CausalConvNeXtBlock(nn.Module):
    """Depthwise causal conv (kernel 7), LayerNorm, pointwise MLP (x3), layer scale, residual."""

    def __init__(self, channels: int, layer_scale: float, kernel: int = 7) -> None:
        super().__init__()
        self.pad = kernel - 1
        self.dwconv = nn.Conv1d(channels, channels, kernel, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 3 * channels), nn.GELU(), nn.Linear(3 * channels, channels))
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:  # [B, C, F]
        h = self.dwconv(nn.functional.pad(x, (self.pad, 0)))
        h = self.mlp(self.norm(h.transpose(1, 2))) * self.gamma
        return x + h.transpose(1, 2)


class IstftHead(nn.Module):
    """States [B, dim_in, T] -> audio [B, 1, T * upsample * hop] through an inverse STFT."""

    def __init__(self, dim_in: int, channels: int, layers: int, hop: int, upsample: int) -> None:
        super().__init__()
        if hop % 2 or upsample < 1:
            raise ValueError(f"iSTFT head: need an even hop and upsample >= 1, got {hop}, {upsample}")
        self.hop, self.n_fft, self.upsample, self.channels = hop, 4 * hop, upsample, channels
        self.split = nn.Conv1d(dim_in, channels * upsample, 1)
        self.blocks = nn.Sequential(*[CausalConvNeXtBlock(channels, 1.0 / layers) for _ in range(layers)])
        self.norm = nn.LayerNorm(channels)
        self.bins = self.n_fft // 2 + 1
        self.out = nn.Linear(channels, 2 * self.bins)  # log-magnitudes, then phases
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    @torch.no_grad()
    def scale_magnitudes(self, scale: float) -> None:
        """Scale the log-magnitude outputs' weights (the training init of ``output_init_scale``):
        every bin starts near magnitude 1, a speech-level noise, with the phases untouched."""
        self.out.weight[: self.bins].mul_(scale)
        self.out.bias[: self.bins].mul_(scale)

    def spectrum(self, x: Tensor) -> Tensor:
        """Complex STFT [B, n_fft / 2 + 1, F] with F = T * upsample."""
        b, _, t = x.shape
        h = self.split(x).reshape(b, self.channels, self.upsample, t).permute(0, 1, 3, 2)
        h = self.blocks(h.reshape(b, self.channels, t * self.upsample))
        log_mag, phase = self.out(self.norm(h.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
        # float32 from here: complex tensors have no bf16 (the head runs under bf16 autocast on GPU)
        log_mag, phase = log_mag.float(), phase.float()
        mag = torch.exp(log_mag.clamp(max=MAX_LOG_MAGNITUDE))
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def forward(self, x: Tensor) -> Tensor:
        spec = self.spectrum(x)
        frames = spec.shape[-1]
        # centred frames: F + 1 of them give exactly F * hop samples; the last is repeated
        spec = torch.cat([spec, spec[..., -1:]], dim=-1)
        audio = torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True,
                            length=frames * self.hop)
        return audio[:, None].to(x.dtype)
