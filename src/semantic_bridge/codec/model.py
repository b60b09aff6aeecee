"""The Semantic Bridge codec: Mimi's encoder and decoder around a split RVQ.

``encoder`` and ``decoder`` are transformers' own ``MimiEncoderModel`` (SEANet encoder,
causal transformer, downsampling to 12.5 Hz) and ``MimiDecoderModel`` (the mirror image),
built from a ``MimiConfig`` whose sizes come from params. The quantizer is injected (see
``quantizer.py``). Because the halves are Mimi's classes, a kyutai Mimi checkpoint's
encoder/decoder weights load key for key (``surgery.py``). ``codec.decoder: istft`` swaps the
decoder's SEANet for a Vocos-style iSTFT head (``istft.py``; surgery then leaves it random).

Shapes: audio [B, 1, N] at 24 kHz; latent [B, D, T] with T = ceil(N / 1920); codes [B, K, T].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn
from transformers import MimiConfig
from transformers.models.mimi.modeling_mimi import MimiDecoderModel, MimiEncoderModel

from ..base.errors import ConfigError
from ..base.frames import samples_per_frame
from ..config import CodebooksConfig, CodecConfig, check_frame_contract
from .istft import IstftHead
from .quantizer import QuantizedResult, SplitQuantizer

CHECKPOINT_FORMAT = "semantic-bridge-codec/1"


def mimi_config(codec: CodecConfig, books: CodebooksConfig, sample_rate: int) -> MimiConfig:
    """The ``MimiConfig`` for these params (its frame rate follows from the strides)."""
    return MimiConfig(
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


def group_name(levels: Sequence[int]) -> str:
    """``cb3`` for one level, ``cb2_8`` for levels 2 through 8 (a contiguous run)."""
    levels = sorted(levels)
    if levels != list(range(levels[0], levels[-1] + 1)):
        raise ValueError(f"levels {levels} are not a contiguous run")
    return f"cb{levels[0]}" if len(levels) == 1 else f"cb{levels[0]}_{levels[-1]}"


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
                 decoder: MimiDecoderModel, config: CodecConfig, books: CodebooksConfig,
                 sample_rate: int):
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        # the params that rebuild this model (stored in checkpoints)
        self.config, self.books, self.sample_rate = config, books, sample_rate
        self.hop = samples_per_frame(sample_rate)
        self.frame_rate = config.frame_rate(sample_rate)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, codec: CodecConfig, books: CodebooksConfig, sample_rate: int,
              dead_code_threshold: float = 0.0, sync: bool = False) -> "BridgeCodec":
        """A randomly initialised codec (codebooks are initialised from the first batch).

        ``sync``: all-reduce codebook statistics across processes (DDP training)."""
        check_frame_contract(codec, sample_rate)
        config = mimi_config(codec, books, sample_rate)
        quantizer = SplitQuantizer(
            codec.hidden_size, codec.codebook_dim, books.semantic, books.acoustic, books.size,
            decay=books.ema_decay, kmeans_iters=books.kmeans_iters,
            dead_code_threshold=dead_code_threshold, sync=sync,
        )
        decoder = MimiDecoderModel(config.decoder_config)
        if codec.decoder == "istft":  # Mimi's upsampling and transformer, then an iSTFT head
            decoder.decoder_seanet = IstftHead(codec.hidden_size, codec.istft_channels, codec.istft_layers,
                                               codec.istft_hop, codec.istft_frames_per_state)
        return cls(MimiEncoderModel(config.encoder_config), quantizer, decoder, codec, books, sample_rate)

    @torch.no_grad()
    def scale_output_layer(self, scale: float) -> None:
        """Multiply the decoder's last convolution (weights and bias) by ``scale``: a training
        init. A randomly initialised decoder outputs ~50x the level of speech; the mel loss is
        then first reduced by shrinking the output towards silence, with the input ignored
        (the plateau of the README's learning curve). Scaled down, it starts at speech level.
        An iSTFT head (``codec.decoder: istft``) scales its log-magnitude outputs instead."""
        if scale == 1.0:
            return
        if isinstance(self.decoder.decoder_seanet, IstftHead):
            self.decoder.decoder_seanet.scale_magnitudes(scale)
            return
        conv = self.decoder.decoder_seanet.layers[-1].conv
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.mul_(scale)

    @property
    def n_levels(self) -> int:
        return self.quantizer.n_levels

    @property
    def n_semantic(self) -> int:
        return self.quantizer.n_semantic

    def bitrate_bps(self, levels: Optional[int] = None) -> float:
        """Bits per second of ``levels`` codebooks (all by default)."""
        return self.books.bitrate_bps(self.frame_rate, levels)

    def level_groups(self) -> dict[str, list[int]]:
        """The codebook groups the evaluations report, named by their levels: each semantic
        level alone (CB0: the LLM level, CB1), the semantic levels together (CB0+1), the
        acoustic levels (CB2..8) and all."""
        n, s = self.n_levels, self.n_semantic
        groups = [[k] for k in range(s)] + [list(range(s)), list(range(s, n))]
        return {**{group_name(g): g for g in groups}, "all": list(range(n))}

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

    @torch.no_grad()
    def resynthesize(self, audio: Tensor, subsets: Sequence[Optional[Sequence[int]]]) -> list[Tensor]:
        """Encode ``audio`` [N] once and decode it from each subset of levels (None: all), each
        trimmed to ``N``: every subset is decoded from the same codes."""
        x = audio.reshape(1, 1, -1)
        codes = self.encode(x)
        return [self.decode(codes, levels)[0, 0, : x.shape[-1]] for levels in subsets]

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
                level_mask: Optional[Tensor] = None, bypass: Optional[Tensor] = None) -> CodecOutput:
        """Encode, quantize (updating codebooks in training) and decode.

        audio [B, 1, N]; frame_mask [B, T] real frames; level_mask [B, K] which levels the
        decoder sees per example (acoustic / quantizer dropout); bypass [B] bool: these examples
        are decoded from the unquantized latent (Mimi's "quantization rate": the codebooks and
        the distillation heads still see every example)."""
        latent = self.encode_latent(audio)
        q = self.quantize(latent, frame_mask)
        decoder_in = q.latent(mask=level_mask)
        if bypass is not None:
            decoder_in = torch.where(bypass[:, None, None].to(latent.device), latent, decoder_in)
        return CodecOutput(self.decode_latent(decoder_in), latent, q)

    # ------------------------------------------------------------------ files
    def checkpoint(self, **extra: Any) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "codec": asdict(self.config),
                "codebooks": asdict(self.books), "sample_rate": self.sample_rate, **extra,
                "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, source: str | Path | dict[str, Any]) -> "BridgeCodec":
        """Rebuild from ``checkpoint()`` output or a file holding it (config embedded)."""
        ckpt = source if isinstance(source, dict) else torch.load(
            source, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{source if not isinstance(source, dict) else 'checkpoint'}: "
                             f"not a {CHECKPOINT_FORMAT} checkpoint")
        codec = cls.build(CodecConfig(**ckpt["codec"]), CodebooksConfig(**ckpt["codebooks"]),
                          ckpt["sample_rate"])
        codec.load_state_dict(ckpt["state_dict"])
        return codec.eval()
