"""A CTranslate2 Whisper checkpoint (``model.bin``) as a transformers ``WhisperForConditionalGeneration``.

The Whisper weights that ship offline (``models/weights.py``) are CTranslate2 conversions,
which run in faster-whisper but expose no hidden layer. Reading the file back gives the same
weights as a transformers model: its encoder is then a speech teacher like WavLM (any
``hidden_states`` layer), loaded by path through ``from_pretrained``.

``model.bin`` is CTranslate2's own binary format (a flat list of named arrays, read here with
``struct``, nothing executed): version, spec name, revision, then per variable its name, shape,
dtype and raw bytes, then aliases (the tied output projection). CTranslate2 fuses the attention
projections (self-attention q|k|v, cross-attention k|v); they are split back. Whisper's key
projections have no bias: CTranslate2 stores zeros there, checked.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from ..base.errors import ConfigError

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def read_ct2(path: str | Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """(spec name, variables, aliases) of a CTranslate2 ``model.bin``."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        value = struct.unpack_from(fmt, data, offset)[0]
        offset += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal offset
        n = take("H")
        value = data[offset : offset + n - 1].decode("utf-8")
        offset += n
        return value

    version = take("I")
    if not 5 <= version <= 6:
        raise ConfigError(f"{path}: CTranslate2 binary version {version} is not supported (5-6)")
    spec = string()
    take("I")  # spec revision
    variables = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        size = take("I")
        raw = data[offset : offset + size]
        offset += size
        if dtype == "bfloat16":
            array = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().numpy()
        else:
            array = np.frombuffer(raw, dtype=dtype).copy()
        variables[name] = array.reshape(shape)
    aliases = {string(): string() for _ in range(take("I"))}
    return spec, variables, aliases


def _attention(prefix: str, v: dict[str, np.ndarray], ct2: str, cross: bool, d: int) -> dict[str, np.ndarray]:
    out = {f"{prefix}.out_proj.weight": v[f"{ct2}/linear_{2 if cross else 1}/weight"],
           f"{prefix}.out_proj.bias": v[f"{ct2}/linear_{2 if cross else 1}/bias"]}
    if cross:  # q separate, k|v fused
        q_w, q_b = v[f"{ct2}/linear_0/weight"], v[f"{ct2}/linear_0/bias"]
        kv_w, kv_b = v[f"{ct2}/linear_1/weight"], v[f"{ct2}/linear_1/bias"]
        parts_w = [q_w, kv_w[:d], kv_w[d:]]
        parts_b = [q_b, kv_b[:d], kv_b[d:]]
    else:  # q|k|v fused
        w, b = v[f"{ct2}/linear_0/weight"], v[f"{ct2}/linear_0/bias"]
        parts_w = [w[:d], w[d : 2 * d], w[2 * d :]]
        parts_b = [b[:d], b[d : 2 * d], b[2 * d :]]
    if np.abs(parts_b[1]).max() > 0:
        raise ConfigError(f"{ct2}: non-zero key bias, which Whisper does not have")
    for name, w, b in zip(("q_proj", "k_proj", "v_proj"), parts_w, parts_b):
        out[f"{prefix}.{name}.weight"] = w
        if name != "k_proj":
            out[f"{prefix}.{name}.bias"] = b
    return out


def _norm(prefix: str, v: dict[str, np.ndarray], ct2: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.weight": v[f"{ct2}/gamma"], f"{prefix}.bias": v[f"{ct2}/beta"]}


def _linear(prefix: str, v: dict[str, np.ndarray], ct2: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.weight": v[f"{ct2}/weight"], f"{prefix}.bias": v[f"{ct2}/bias"]}


def whisper_state_dict(v: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """transformers ``WhisperForConditionalGeneration`` tensors from CTranslate2 variables, and
    the sizes they imply."""
    d = v["encoder/conv1/weight"].shape[0]
    n_enc = len({k.split("/")[1] for k in v if k.startswith("encoder/layer_") and k.count("/") > 2})
    n_dec = len({k.split("/")[1] for k in v if k.startswith("decoder/layer_") and k.count("/") > 2})
    sd: dict[str, np.ndarray] = {
        "model.encoder.conv1.weight": v["encoder/conv1/weight"], "model.encoder.conv1.bias": v["encoder/conv1/bias"],
        "model.encoder.conv2.weight": v["encoder/conv2/weight"], "model.encoder.conv2.bias": v["encoder/conv2/bias"],
        "model.encoder.embed_positions.weight": v["encoder/position_encodings/encodings"],
        **_norm("model.encoder.layer_norm", v, "encoder/layer_norm"),
        "model.decoder.embed_tokens.weight": v["decoder/embeddings/weight"],
        "model.decoder.embed_positions.weight": v["decoder/position_encodings/encodings"],
        **_norm("model.decoder.layer_norm", v, "decoder/layer_norm"),
    }
    for i in range(n_enc):
        ours, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        sd.update(_attention(f"{ours}.self_attn", v, f"{ct2}/self_attention", False, d))
        sd.update(_norm(f"{ours}.self_attn_layer_norm", v, f"{ct2}/self_attention/layer_norm"))
        sd.update(_linear(f"{ours}.fc1", v, f"{ct2}/ffn/linear_0"))
        sd.update(_linear(f"{ours}.fc2", v, f"{ct2}/ffn/linear_1"))
        sd.update(_norm(f"{ours}.final_layer_norm", v, f"{ct2}/ffn/layer_norm"))
    for i in range(n_dec):
        ours, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        sd.update(_attention(f"{ours}.self_attn", v, f"{ct2}/self_attention", False, d))
        sd.update(_norm(f"{ours}.self_attn_layer_norm", v, f"{ct2}/self_attention/layer_norm"))
        sd.update(_attention(f"{ours}.encoder_attn", v, f"{ct2}/attention", True, d))
        sd.update(_norm(f"{ours}.encoder_attn_layer_norm", v, f"{ct2}/attention/layer_norm"))
        sd.update(_linear(f"{ours}.fc1", v, f"{ct2}/ffn/linear_0"))
        sd.update(_linear(f"{ours}.fc2", v, f"{ct2}/ffn/linear_1"))
        sd.update(_norm(f"{ours}.final_layer_norm", v, f"{ct2}/ffn/layer_norm"))
    sizes = {"d_model": d, "encoder_layers": n_enc, "decoder_layers": n_dec,
             "encoder_attention_heads": int(v["encoder/num_heads"]),
             "decoder_attention_heads": int(v["decoder/num_heads"]),
             "encoder_ffn_dim": v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
             "decoder_ffn_dim": v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
             "vocab_size": v["decoder/embeddings/weight"].shape[0],
             "num_mel_bins": v["encoder/conv1/weight"].shape[1],
             "max_source_positions": v["encoder/position_encodings/encodings"].shape[0],
             "max_target_positions": v["decoder/position_encodings/encodings"].shape[0]}
    return sd, sizes


def convert_ct2_whisper(ct2_dir: str | Path, out: str | Path) -> Path:
    """Write ``ct2_dir`` (a faster-whisper model folder) as a transformers Whisper folder: weights
    (safetensors, float32), config, generation config, tokenizer and feature extractor."""
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast)

    ct2_dir, out = Path(ct2_dir), Path(out)
    spec, variables, aliases = read_ct2(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ConfigError(f"{ct2_dir}: a {spec} checkpoint, not Whisper")
    state, sizes = whisper_state_dict(variables)
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(ct2_dir / "tokenizer.json"))
    special = {t: tokenizer.convert_tokens_to_ids(t) for t in
               ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|en|>", "<|transcribe|>")}
    multilingual = sizes["vocab_size"] >= 51865  # the English-only models have 51864 tokens
    eot = special["<|endoftext|>"]
    tokenizer.pad_token = tokenizer.eos_token = tokenizer.bos_token = tokenizer.unk_token = "<|endoftext|>"
    config = WhisperConfig(**sizes, activation_function="gelu", scale_embedding=False,
                           tie_word_embeddings=True, decoder_start_token_id=special["<|startoftranscript|>"],
                           eos_token_id=eot, pad_token_id=eot, bos_token_id=eot)
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.asarray(a, np.float32))
                                                 for k, a in state.items()}, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise ConfigError(f"{ct2_dir}: tensors that do not map: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    generation = dict(decoder_start_token_id=special["<|startoftranscript|>"], eos_token_id=eot,
                      pad_token_id=eot, bos_token_id=eot, max_length=config.max_target_positions,
                      no_timestamps_token_id=special["<|notimestamps|>"], is_multilingual=multilingual,
                      suppress_tokens=ct2_config.get("suppress_ids", []),
                      begin_suppress_tokens=ct2_config.get("suppress_ids_begin", []))
    if multilingual:
        generation.update(lang_to_id={"<|en|>": special["<|en|>"]},
                          task_to_id={"transcribe": special["<|transcribe|>"]})
    model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]), tokenizer).save_pretrained(out)
    return out
