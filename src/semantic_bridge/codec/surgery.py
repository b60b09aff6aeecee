"""Weight surgery: initialise the bridge codec from a kyutai Mimi checkpoint (transformers format).

Mapping (DESIGN §1):
- encoder (SEANet + transformer + downsample), decoder (upsample + transformer + SEANet): the
  same transformers classes on both sides, so every tensor copies key for key;
- semantic RVQ projections <- Mimi's semantic projections; semantic level 1 (CB0) <- Mimi's
  semantic codebook; acoustic RVQ projections <- Mimi's acoustic projections; acoustic levels
  1..7 (CB2..CB8) <- Mimi's acoustic codebooks 1..7;
- semantic level 2 (CB1) is new: left uninitialised, so k-means initialises it from the first
  training batch; Mimi's acoustic codebooks 8..31 are not used.

Mimi stores a codebook as ``embed_sum`` and ``cluster_usage`` (entry = sum / usage);
vector-quantize-pytorch as ``embed_avg``, ``cluster_size`` and the ratio ``embed``. The sums
and counts copy unchanged; ``embed`` is derived with Mimi's own epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import MimiModel

from ..base.errors import UserError
from .model import BridgeCodec

MIMI_EPSILON = 1e-5  # MimiEuclideanCodebook's clamp on cluster_usage


class SurgeryError(UserError, ValueError):
    """The checkpoint does not fit the codec's sizes."""


@dataclass
class SurgeryReport:
    """copied: ours <- theirs, identical tensors; derived: ours <- formula of theirs;
    new: ours -> how it is initialised; unused: their tensors that have no place here."""

    source: str
    copied: dict[str, str] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)  # our codebook level <- their level
    new: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)

    @property
    def derived(self) -> dict[str, str]:
        """Our tensors computed from theirs (not copied), with the formula."""
        out = {}
        for mine, theirs in self.levels.items():
            out[f"{mine}._codebook.embed"] = (f"{theirs}.codebook.embed_sum / {theirs}.codebook."
                                              f"cluster_usage.clamp(min={MIMI_EPSILON})")
            out[f"{mine}._codebook.initted"] = "True (codebook given)"
        return out

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "copied": len(self.copied), "derived": len(self.derived),
                "new": sorted(self.new), "unused": len(self.unused)}


def _codebook_keys(ours: str, theirs: str) -> dict[str, str]:
    return {f"{ours}._codebook.embed_avg": f"{theirs}.codebook.embed_sum",
            f"{ours}._codebook.cluster_size": f"{theirs}.codebook.cluster_usage"}


def _check_sizes(codec: BridgeCodec, mimi: MimiModel) -> None:
    c, ours = mimi.config, codec.config
    pairs = {
        "codec.hidden_size": (ours.hidden_size, c.hidden_size),
        "codec.num_filters": (ours.num_filters, c.num_filters),
        "codec.upsampling_ratios": (list(ours.upsampling_ratios), list(c.upsampling_ratios)),
        "codec.transformer_layers": (ours.transformer_layers, c.num_hidden_layers),
        "codec.attention_heads": (ours.attention_heads, c.num_attention_heads),
        "codec.intermediate_size": (ours.intermediate_size, c.intermediate_size),
        "codec.codebook_dim": (ours.codebook_dim, c.vector_quantization_hidden_dimension),
        "codebooks.size": (codec.books.size, c.codebook_size),
    }
    for key, (mine, theirs) in pairs.items():
        if mine != theirs:
            raise SurgeryError(f"{key}: {mine} here, {theirs} in the Mimi checkpoint "
                               "(weight surgery needs the paper-scale codec sizes)")
    if c.num_semantic_quantizers != 1:
        raise SurgeryError(f"Mimi checkpoint has {c.num_semantic_quantizers} semantic codebooks, expected 1")
    n_acoustic = c.num_quantizers - c.num_semantic_quantizers
    if n_acoustic < codec.n_levels - codec.n_semantic:
        raise SurgeryError(f"Mimi checkpoint has {n_acoustic} acoustic codebooks, "
                           f"fewer than codebooks.acoustic = {codec.n_levels - codec.n_semantic}")


def mimi_mapping(codec: BridgeCodec, mimi: MimiModel) -> SurgeryReport:
    """The plan: which of our tensors come from which of Mimi's, and which are new."""
    ours = codec.state_dict()
    theirs = mimi.state_dict()
    report = SurgeryReport(source=str(getattr(mimi.config, "_name_or_path", "") or "mimi"))
    # an iSTFT head (codec.decoder: istft) sits where Mimi's SEANet is, with no counterpart
    no_counterpart = ("decoder.decoder_seanet.",) if codec.config.decoder == "istft" else ()
    for key in ours:
        if key.startswith(("encoder.", "decoder.")) and not key.startswith(no_counterpart):
            report.copied[key] = key
    sem, aco = "quantizer.semantic_residual_vector_quantizer", "quantizer.acoustic_residual_vector_quantizer"
    for part, mimi_part in (("quantizer.semantic", sem), ("quantizer.acoustic", aco)):
        for proj in ("input_proj.weight", "output_proj.weight"):
            report.copied[f"{part}.{proj}"] = f"{mimi_part}.{proj}"
    # CB0 <- Mimi semantic level 1; CB2..CB8 <- Mimi acoustic levels 1..7
    levels = [("quantizer.semantic.layers.0", f"{sem}.layers.0")]
    levels += [(f"quantizer.acoustic.layers.{i}", f"{aco}.layers.{i}")
               for i in range(codec.n_levels - codec.n_semantic)]
    for mine, mimi_level in levels:
        report.copied.update(_codebook_keys(mine, mimi_level))
        report.levels[mine] = mimi_level
    derived = report.derived
    for key in ours:
        if key not in report.copied and key not in derived:
            report.new[key] = ("k-means on the first training batch"
                               if "._codebook." in key else "random init")
    used = set(report.copied.values())  # the derived tensors read these same sums and counts
    report.unused = sorted(k for k in theirs if k not in used)
    missing = sorted(v for v in report.copied.values() if v not in theirs)
    if missing:
        raise SurgeryError(f"Mimi checkpoint lacks {missing[0]} (and {len(missing) - 1} more)")
    return report


@torch.no_grad()
def init_from_mimi(codec: BridgeCodec, mimi: MimiModel | str) -> SurgeryReport:
    """Copy a Mimi model's weights into ``codec`` (in place); ``mimi`` may be a name or path
    for ``MimiModel.from_pretrained``."""
    if isinstance(mimi, str):
        mimi = MimiModel.from_pretrained(mimi)
    _check_sizes(codec, mimi)
    report = mimi_mapping(codec, mimi)
    ours, theirs = codec.state_dict(), mimi.state_dict()
    for mine, src in report.copied.items():
        # vector-quantize-pytorch keeps a leading "number of codebooks" axis of size 1
        if ours[mine].shape not in (theirs[src].shape, (1, *theirs[src].shape)):
            raise SurgeryError(f"{mine} {tuple(ours[mine].shape)} != {src} {tuple(theirs[src].shape)}")
        ours[mine].copy_(theirs[src].reshape(ours[mine].shape))
    for mine, level in report.levels.items():
        embed = ours[f"{mine}._codebook.embed"]
        embed_sum = theirs[f"{level}.codebook.embed_sum"]
        usage = theirs[f"{level}.codebook.cluster_usage"].clamp(min=MIMI_EPSILON)
        embed.copy_((embed_sum / usage[:, None]).reshape(embed.shape))
        ours[f"{mine}._codebook.initted"].fill_(True)
    return report
