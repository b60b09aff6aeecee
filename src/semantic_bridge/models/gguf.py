"""A GGUF causal LM (weights and tokenizer) as a transformers folder in safetensors.

transformers reads GGUF through the ``gguf`` package and de-quantises every tensor to float
(SmolLM2-135M Q4_1: ~30 s on 2 CPU cores); the model it returns stays marked as "quantised"
and refuses ``save_pretrained``, so the float weights are moved into a plain model of the same
config first. Done once, as the ``real_models`` stage: every later user loads safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch


def convert_gguf_causal_lm(gguf: str | Path, out: str | Path) -> Path:
    """Write the causal LM in the GGUF file ``gguf`` to ``out`` (float32 safetensors)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(gguf), Path(out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
