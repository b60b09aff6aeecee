"""Load a transformers model for one hidden layer, and only as deep as that layer needs.

``layer`` always means an index into the model's ``hidden_states`` tuple:
``hidden_states[0]`` is the input to the first block and ``hidden_states[k]`` the raw
output of block ``k - 1`` (``model.layers[k - 1]``; for Qwen2.5-1.5B, ``hidden_states[27]``
is the output of ``layers[26]``, the 27th of 28 blocks, before the final norm). Only
the last index differs between families: Qwen2 and the Whisper encoder apply their final norm there, WavLM does
not (its ``last_hidden_state`` is the normed one).

Blocks after ``layer`` cannot change ``hidden_states[layer]``, so they are dropped: the
model keeps ``layer + 1`` blocks (the extra one keeps ``hidden_states[layer]`` an
intermediate entry, where its meaning is the same for every family). For WavLM-Large at
layer 6 that is 7 of 24 blocks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semantic_bridge.base.errors import ConfigError, MissingFile

log = logging.getLogger(__name__)


def _block_list(model: nn.Module, n_layers: int) -> tuple[nn.Module, str] | None:
    """``(parent, attribute)`` such that ``getattr(parent, attribute)`` is the one
    ``nn.ModuleList`` named ``layers`` holding ``n_layers`` blocks; None if there is not exactly one."""
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.ModuleList) and name.split(".")[-1] == "layers"
             and len(module) == n_layers]
    if len(found) != 1:
        return None
    name, module = found[0]
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    return parent, name.split(".")[-1]


def check_model_path(name_or_path: str, key: str) -> None:
    """A local path that does not exist is a one-line error, not a hub lookup that fails
    deep in transformers (hub names like ``Qwen/Qwen2.5-1.5B`` pass through)."""
    path = Path(name_or_path)
    local = path.is_absolute() or name_or_path.startswith(".") or (len(path.parts) > 1 and Path(path.parts[0]).is_dir())
    if local and not path.exists():
        raise MissingFile(f"{key}: {name_or_path} does not exist (embedded models: dvc repro embedded_models)")


def load_for_layer(name_or_path: str, layer: int, key: str) -> nn.Module:
    """``AutoModel.from_pretrained(name_or_path)`` in eval mode, cut after ``layer``.

    ``key`` names the params entry in errors (e.g. ``teachers.wavlm.layer``).
    """
    from transformers import AutoModel

    check_model_path(name_or_path, key.rsplit(".", 1)[0] + ".model")
    model = AutoModel.from_pretrained(name_or_path)
    if getattr(model.config, "is_encoder_decoder", False):  # Whisper: the encoder is the teacher
        model = model.get_encoder()
    model.eval().requires_grad_(False)
    n_layers = int(model.config.num_hidden_layers)
    if not 0 <= layer <= n_layers:
        raise ConfigError(f"{key}: {layer} is out of range: {name_or_path} has hidden_states 0..{n_layers}")
    if layer + 1 < n_layers:
        found = _block_list(model, n_layers)
        if found is None:
            log.warning("%s: no unique block list found; running all %d blocks", name_or_path, n_layers)
        else:
            parent, attr = found
            setattr(parent, attr, getattr(parent, attr)[: layer + 1])
            model.config.num_hidden_layers = layer + 1  # some models slice by it
            log.info("%s: keeping %d of %d blocks for hidden_states[%d]", name_or_path, layer + 1, n_layers, layer)
    return model


class Teacher:
    """What the teacher extractors share: the model of ``cfg.model`` cut after ``cfg.layer`` on
    ``device``, its hidden size checked against ``cfg.dim``, and the job identity. Subclasses set
    ``name`` (the stage), ``section`` (the params section, for errors) and load their processor
    (tokenizer, feature extractor) in ``load_processor`` before the model loads."""

    name: str
    section: str

    def __init__(self, cfg: Any, device: torch.device) -> None:
        check_model_path(cfg.model, f"{self.section}.model")
        self.cfg, self.device = cfg, device
        self.load_processor(cfg.model)
        self.model = load_for_layer(cfg.model, cfg.layer, f"{self.section}.layer").to(device)
        check_dim(self.model, cfg.dim, f"{self.section}.dim", cfg.model)

    def load_processor(self, name_or_path: str) -> None:
        """Load what turns inputs into model inputs; raise ``ConfigError`` if it does not fit."""

    def identity(self) -> dict[str, Any]:
        return {"stage": self.name, "model": self.cfg.model, "model_type": self.model.config.model_type,
                "layer": self.cfg.layer, "dim": self.cfg.dim}


def hidden_size(model: nn.Module) -> int:
    return int(model.config.hidden_size)


def check_dim(model: nn.Module, expected: int, key: str, name: str) -> None:
    if hidden_size(model) != expected:
        raise ConfigError(f"{key}: {expected}, but {name} has hidden size {hidden_size(model)}")


def select_layer(outputs, layer: int) -> torch.Tensor:
    """``hidden_states[layer]`` of a forward run with ``output_hidden_states=True``."""
    return outputs.hidden_states[layer]
