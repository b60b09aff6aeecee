"""The Semantic Bridge codec: Mimi's encoder and decoder around a split RVQ.

``encoder`` and ``decoder`` are transformers' own ``MimiEncoderModel`` (SEANet encoder,
causal transformer, downsampling to 12.5 Hz) and ``MimiDecoderModel`` (the mirror image),
built from a ``MimiConfig`` whose sizes come from params. The quantizer is injected (see
``quantizer.py``). Because the halves are Mimi's classes, a kyutai Mimi checkpoint's
encoder/decoder weights load key for key (``surgery.py``).

Shapes: audio [B, 1, N] at 24 kHz; latent [B, D, T] with T = ceil(N / 1920); codes [B, K, T].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn
from transformers import MimiConfig
from transformers.models.mimi.modeling_mimi import MimiDecoderModel, MimiEncoderModel

from ..config import CodebooksConfig, CodecConfig, ConfigError
from ..frames import samples_per_frame
from .quantizer import QuantizedResult, SplitQuantizer

CHECKPOINT_FORMAT = "semantic-bridge-codec/1"


def mimi_config(codec: CodecConfig, books: CodebooksConfig, sample_rate: int) -> MimiConfig:
    """The ``MimiConfig`` for these params; the frame rate it implies must be ``codec.frame_rate``."""
    config = MimiConfig(
        sampling_rate=sample_rate,
        hidden_size=codec.hidden_size,
        num_filters=codec.num_filters,
        upsampling_ratios=list(codec.upsampling_ratios),
        num_hidden_layers=codec.transformer_layers,
        num_attention_heads=codec.attention_heads,
        num_key_value_heads=codec.attention_heads,
        intermediate_size=codec.intermediate_size,
        codebook_size=books.size,
        codebook_dim=codec.codebook_dim,
        vector_quantization_hidden_dimension=codec.codebook_dim,
        num_quantizers=books.n_levels,
        num_semantic_quantizers=books.semantic,
        upsample_groups=codec.hidden_size,  # depthwise, as Mimi (512 groups at 512 channels)
    )
    if not math.isclose(config.frame_rate, codec.frame_rate):
        raise ConfigError(
            f"codec.frame_rate: {codec.frame_rate} Hz, but data.sample_rate {sample_rate} and "
            f"codec.upsampling_ratios {list(codec.upsampling_ratios)} (x2 downsampling) give "
            f"{config.frame_rate:g} Hz"
        )
    return config


@dataclass
class CodecOutput:
    """A training forward pass.

    audio:     [B, 1, T * 1920] reconstruction from the masked levels
    latent:    [B, D, T] pre-quantisation latent
    quantized: per-level codes and latents, commitment loss
    """

    audio: Tensor
    latent: Tensor
    quantized: QuantizedResult


class BridgeCodec(nn.Module):
    """Encoder -> split RVQ -> decoder. Build with ``BridgeCodec.build``."""

    def __init__(self, encoder: MimiEncoderModel, quantizer: SplitQuantizer,
                 decoder: MimiDecoderModel, sample_rate: int, settings: dict[str, Any]):
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.sample_rate = sample_rate
        self.hop = samples_per_frame(sample_rate)
        self.settings = settings  # the params that rebuild this model (stored in checkpoints)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, codec: CodecConfig, books: CodebooksConfig, sample_rate: int,
              dead_code_threshold: float = 0.0, sync: bool = False) -> "BridgeCodec":
        """A randomly initialised codec (codebooks are initialised from the first batch).

        ``sync``: all-reduce codebook statistics across processes (DDP training)."""
        config = mimi_config(codec, books, sample_rate)
        quantizer = SplitQuantizer(
            codec.hidden_size, codec.codebook_dim, books.semantic, books.acoustic, books.size,
            decay=books.ema_decay, kmeans_iters=books.kmeans_iters,
            dead_code_threshold=dead_code_threshold, sync=sync,
        )
        settings = {"codec": asdict(codec), "codebooks": asdict(books), "sample_rate": sample_rate}
        return cls(MimiEncoderModel(config.encoder_config), quantizer,
                   MimiDecoderModel(config.decoder_config), sample_rate, settings)

    @property
    def n_levels(self) -> int:
        return self.quantizer.n_levels

    @property
    def n_semantic(self) -> int:
        return self.quantizer.n_semantic

    def n_frames(self, n_samples: int) -> int:
        return -(-n_samples // self.hop)

    # ------------------------------------------------------------------ encode
    def _audio(self, audio: Tensor) -> Tensor:
        if audio.dim() == 2:
            audio = audio[:, None]
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be [B, N] or [B, 1, N] mono, got {tuple(audio.shape)}")
        return audio

    def encode_latent(self, audio: Tensor) -> Tensor:
        """Pre-quantisation latent [B, D, T] of audio [B, 1, N] (or [B, N]); T = ceil(N / hop)."""
        audio = self._audio(audio)
        latent = self.encoder(audio).latents
        expected = self.n_frames(audio.shape[-1])
        if latent.shape[-1] != expected:  # the frame contract (DESIGN §2), checked like moshi does
            raise RuntimeError(f"encoder gave {latent.shape[-1]} frames for {audio.shape[-1]} "
                               f"samples, expected {expected}")
        return latent

    def quantize(self, latent: Tensor, mask: Optional[Tensor] = None) -> QuantizedResult:
        """Split-RVQ the latent [B, D, T]; ``mask`` [B, T] marks real frames."""
        return self.quantizer(latent, mask)

    @torch.no_grad()
    def encode(self, audio: Tensor) -> Tensor:
        """Codes [B, K, T] (K = 9: CB0, CB1 semantic; CB2..CB8 acoustic)."""
        return self.quantize(self.encode_latent(audio)).codes

    # ------------------------------------------------------------------ decode
    def decode_latent(self, latent: Tensor) -> Tensor:
        """Audio [B, 1, T * hop] from a decoder input latent [B, D, T]."""
        return self.decoder(latent).audio_values

    @torch.no_grad()
    def decode(self, codes: Tensor, levels: Optional[Sequence[int]] = None) -> Tensor:
        """Audio [B, 1, T * hop] from codes [B, K, T], using only ``levels`` (default: all).

        ``levels=[0, 1]`` decodes from CB0+1 alone: the other levels contribute zero."""
        return self.decode_latent(self.quantizer.dequantize(codes, levels))

    def swap_codes(self, codes_a: Tensor, codes_b: Tensor, content_levels: int) -> Tensor:
        """Codes with levels < ``content_levels`` from A and the rest from B, both trimmed to
        the shorter one's frame count. ``content_levels`` 1 = CB0, 2 = CB0+1."""
        if not 1 <= content_levels < self.n_levels:
            raise ValueError(f"content_levels must be in 1..{self.n_levels - 1}, got {content_levels}")
        t = min(codes_a.shape[-1], codes_b.shape[-1])
        return torch.cat([codes_a[:, :content_levels, :t], codes_b[:, content_levels:, :t]], dim=1)

    @torch.no_grad()
    def voice_swap(self, codes_a: Tensor, codes_b: Tensor, content_levels: int) -> Tensor:
        """Audio with A's content codebooks and B's remaining (voice) codebooks ("Frankenstein")."""
        return self.decode(self.swap_codes(codes_a, codes_b, content_levels))

    # ------------------------------------------------------------------ training
    def forward(self, audio: Tensor, frame_mask: Optional[Tensor] = None,
                level_mask: Optional[Tensor] = None) -> CodecOutput:
        """Encode, quantize (updating codebooks in training) and decode.

        audio [B, 1, N]; frame_mask [B, T] real frames; level_mask [B, K] which levels the
        decoder sees per example (acoustic / quantizer dropout)."""
        latent = self.encode_latent(audio)
        q = self.quantize(latent, frame_mask)
        return CodecOutput(self.decode_latent(q.latent(mask=level_mask)), latent, q)

    # ------------------------------------------------------------------ files
    def checkpoint(self, **extra: Any) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, **self.settings, **extra,
                "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, source: str | Path | dict[str, Any]) -> "BridgeCodec":
        """Rebuild from ``checkpoint()`` output or a file holding it (config embedded)."""
        ckpt = source if isinstance(source, dict) else torch.load(
            source, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{source if not isinstance(source, dict) else 'checkpoint'}: "
                             f"not a {CHECKPOINT_FORMAT} checkpoint")
        codec = cls.build(CodecConfig(**ckpt["codec"]), CodebooksConfig(**ckpt["codebooks"]),
                          ckpt["sample_rate"])
        codec.load_state_dict(ckpt["state_dict"])
        return codec.eval()
