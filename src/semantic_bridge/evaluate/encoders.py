"""Frozen audio encoders for eval_reasoning. Each maps a clip ``audio[N]`` (24 kHz) to a
feature sequence ``[T, D]`` that the mapper turns into LM input embeddings:

- ``htsat``: msclap's HTSAT audio encoder (CLAP 2023 configuration); audio at 44.1 kHz,
  repeated or cut to msclap's 7 s window as msclap does. ``framewise`` (default, Mellow's
  approach): the token grid HTSAT builds (768-d in the CLAP 2023 shape) before it pools, averaged over its frequency
  rows: 32 frames per 7 s window (4.57 Hz), cut to the frames that cover the clip itself (not
  its repeats). ``clip``: the pooled clip embedding (T = 1). Weights: msclap's checkpoint
  format (``CLAP_weights_2023.pth``) in the given folder.
- ``mimi_semantic`` / ``mimi_full``: a kyutai Mimi (``MimiModel``, transformers format) by
  path; the quantized latent of its semantic codebook / of all its codebooks (12.5 Hz, 512-d
  at full size).
- ``bridge``: this repo's codec (``models/codec.pt``), the quantized latent of all levels.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Optional, Protocol

import numpy as np
import torch

from ..base.audio import resample
from ..base.device import default_device
from ..base.errors import ConfigError, MissingFile
from ..models.htsat import HTSAT_RATE, HTSAT_SECONDS, build_htsat, htsat_dim, read_shape
from .common import as_batch, load_codec

HTSAT_FEATURES = ("framewise", "clip")

class FeatureEncoder(Protocol):
    dim: int
    frame_rate: Optional[float]  # of the feature sequence; None for one vector per clip

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...


def htsat_frames(seconds: float, grid_frames: int) -> int:
    """How many of the window's ``grid_frames`` time frames cover a clip of ``seconds`` (the rest
    of msclap's 7 s window holds the clip's repeats): at least one."""
    return max(1, min(grid_frames, math.ceil(grid_frames * seconds / HTSAT_SECONDS - 1e-9)))


class HtsatEncoder:
    def __init__(self, folder: str, features: str = "framewise") -> None:
        if features not in HTSAT_FEATURES:
            raise ConfigError(f"eval.reasoning.htsat_features: one of {', '.join(HTSAT_FEATURES)}, got {features!r}")
        self.features = features
        files = sorted(Path(folder).glob("*.pth")) if Path(folder).is_dir() else []
        if len(files) != 1:
            raise ConfigError(f"eval.reasoning.encoders.htsat: {folder} must be a folder holding one "
                              f"msclap checkpoint (*.pth), found {len(files)}")
        try:  # tensors and containers only: a checkpoint is data, never code to run
            state = torch.load(files[0], map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ConfigError(f"eval.reasoning.encoders.htsat: {files[0]} holds more than tensors and "
                              f"containers, refused (torch.load weights_only=True): {err}") from None
        state = state.get("model", state)
        prefix = "audio_encoder."
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            shape = read_shape(folder)
        except ValueError as err:
            raise ConfigError(f"eval.reasoning.encoders.htsat: {err}") from None
        self.net = build_htsat(shape)
        self.dim = htsat_dim(shape)
        try:
            missing, _ = self.net.load_state_dict(own, strict=False)
        except RuntimeError as err:  # tensor sizes of another Swin shape
            first = [line.strip() for line in str(err).splitlines() if "size mismatch" in line][:1]
            raise ConfigError(f"eval.reasoning.encoders.htsat: {files[0]} does not fit the HTSAT shape "
                              f"{shape or 'CLAP 2023'} ({folder}/htsat_shape.json, msclap's when "
                              f"absent): {first[0] if first else err}") from None
        if missing:
            raise ConfigError(f"eval.reasoning.encoders.htsat: {files[0]} lacks {len(missing)} HTSAT "
                              f"tensors, e.g. {missing[0]}")
        self.device = default_device()
        self.net.to(self.device).eval()
        self._grid: list[torch.Tensor] = []
        if features == "framewise":
            # the grouped token grid [B, dim, freq rows, time] is the input of the TSCAM head
            self.net.base.htsat.tscam_conv.register_forward_pre_hook(
                lambda _module, args: self._grid.append(args[0].detach()))

    @property
    def frame_rate(self) -> Optional[float]:
        """Frames per second of the framewise grid (None: one clip vector)."""
        return None if self.features == "clip" else self.grid_frames() / HTSAT_SECONDS

    def grid_frames(self) -> int:
        h = self.net.base.htsat
        merged = h.spec_size // h.patch_stride[1] // 2 ** (len(h.depths) - 1)  # tokens per image side
        return merged * h.freq_ratio  # the image's rows are freq_ratio slices of the time axis

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        wave = resample(audio, sample_rate, HTSAT_RATE)
        n = HTSAT_SECONDS * HTSAT_RATE
        seconds = min(len(wave), n) / HTSAT_RATE
        wave = np.tile(wave, -(-n // max(len(wave), 1)))[:n]  # msclap: repeat short clips, cut long
        x = torch.from_numpy(np.ascontiguousarray(wave))[None].to(self.device)
        self._grid.clear()
        out = self.net.base(x)
        if self.features == "clip":
            return out["embedding"].float().cpu().numpy()  # [1, dim]
        (grid,) = self._grid  # [1, dim, F, T]
        frames = grid[0].mean(1).T  # [T, dim]: time frames over the 7 s window
        if len(frames) != self.grid_frames():
            raise RuntimeError(f"HTSAT grid has {len(frames)} time frames, expected {self.grid_frames()}")
        return frames[: htsat_frames(seconds, len(frames))].float().cpu().numpy()


class MimiEncoder:
    def __init__(self, path: str, semantic_only: bool) -> None:
        from transformers import MimiModel

        self.device = default_device()
        self.net = MimiModel.from_pretrained(path).to(self.device).eval()
        self.rate = self.net.config.sampling_rate
        self.levels = self.net.config.num_semantic_quantizers if semantic_only else self.net.config.num_quantizers
        self.dim = self.net.config.hidden_size
        self.frame_rate = float(self.net.config.frame_rate)

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        x = as_batch(resample(audio, sample_rate, self.rate), self.device)
        codes = self.net.encode(x, num_quantizers=self.levels).audio_codes
        return self.net.quantizer.decode(codes)[0].T.float().cpu().numpy()  # [T, D]


class BridgeEncoder:
    def __init__(self, path: str) -> None:
        self.codec = load_codec(path).codec
        self.dim = self.codec.config.hidden_size
        self.frame_rate = self.codec.frame_rate

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        dev = next(self.codec.parameters()).device
        q = self.codec.quantize(self.codec.encode_latent(as_batch(resample(audio, sample_rate, self.codec.sample_rate), dev)))
        return q.latent()[0].T.float().cpu().numpy()


def make_encoder(name: str, model: str, htsat_features: str = "framewise") -> FeatureEncoder:
    if not Path(model).exists():
        raise MissingFile(f"eval.reasoning.encoders.{name}: {model} not found")
    if name == "htsat":
        return HtsatEncoder(model, htsat_features)
    if name in ("mimi_semantic", "mimi_full"):
        return MimiEncoder(model, semantic_only=name == "mimi_semantic")
    if name == "bridge":
        return BridgeEncoder(model)
    raise ConfigError(f"eval.reasoning.encoders: unknown encoder {name!r}")
