"""Random-weight stand-ins for the pretrained models, for the embedded (offline) scale.

No weights can be downloaded here, so the embedded pipeline runs the *real* model
classes at tiny width with random weights, saved to ``models/`` and then loaded by the
stages through the same ``from_pretrained(name_or_path)`` call that loads
``microsoft/wavlm-large`` or ``Qwen/Qwen2.5-1.5B`` at paper scale. Depth matches the real
models (24 WavLM layers, 28 Qwen layers) so every layer index valid at paper scale is
valid here. The numbers they produce test the machinery, not the science.
"""

from __future__ import annotations

import json

from pathlib import Path

import torch

from semantic_bridge.corpus.sentences import generate_sentences

WAVLM_LAYERS = 24  # as WavLM-Large
QWEN_LAYERS = 28  # as Qwen2.5-1.5B
SMOLLM2_LAYERS = 4  # SmolLM2-135M has 30; no layer is indexed, so depth only costs time here
EOS = "<|endoftext|>"


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def build_tiny_wavlm(out: str | Path, dim: int, seed: int) -> Path:
    """WavLM with WavLM-Large's layout (layer-norm CNN, pre-LN transformer) at width ``dim``."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    config = WavLMConfig(
        hidden_size=dim, num_hidden_layers=WAVLM_LAYERS, num_attention_heads=4,
        intermediate_size=2 * dim, conv_dim=(32,) * 7,
        feat_extract_norm="layer", do_stable_layer_norm=True,  # as wavlm-large: padding-safe
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
        num_buckets=64, max_bucket_distance=200,
    )
    _seeded(seed)
    model = WavLMModel(config).eval()
    out = Path(out)
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                             do_normalize=True, return_attention_mask=True).save_pretrained(out)
    return out


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE (Qwen's tokenizer family) trained on ``texts``, wrapped for transformers.

    Byte-level: any text encodes, whatever corpus it was trained on.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


def build_tiny_qwen(out: str | Path, dim: int, seed: int, vocab_size: int = 1024) -> Path:
    """Qwen2 causal LM (28 layers, width ``dim``) and a byte-level BPE tokenizer trained on
    sentences from the embedded corpus's grammar."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(generate_sentences(4000, seed), vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=QWEN_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=2 * dim,
        max_position_embeddings=2048, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, pad_token_id=tokenizer.pad_token_id,
    )
    _seeded(seed)
    model = Qwen2ForCausalLM(config).eval()
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_smollm2(out: str | Path, seed: int, dim: int = 64, vocab_size: int = 1024) -> Path:
    """SmolLM2-135M's layout (``LlamaForCausalLM``, grouped-query attention, tied embeddings) at
    width ``dim`` and ``SMOLLM2_LAYERS`` deep, with a byte-level BPE trained on the corpus grammar (byte-level:
    questions and answers encode too): the frozen LM of ``eval_reasoning`` at the embedded scale."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(generate_sentences(4000, seed + 1), vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=SMOLLM2_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=2 * dim,
        max_position_embeddings=2048, tie_word_embeddings=True, rope_theta=100000.0,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    _seeded(seed)
    model = LlamaForCausalLM(config).eval()
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_mimi(out: str | Path, seed: int) -> Path:
    """A kyutai-Mimi-layout ``MimiModel`` (1 semantic + 7 acoustic codebooks) at tiny width, for
    the ``mimi_semantic`` / ``mimi_full`` encoders of ``eval_reasoning`` at the embedded scale.

    A freshly built ``MimiModel`` has all-zero codebooks (every code would be 0, DESIGN §5), so
    the codebooks get random entries: codes then depend on the audio, as with trained ones."""
    from transformers import MimiConfig, MimiModel

    config = MimiConfig(hidden_size=64, num_filters=8, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=4, intermediate_size=128, codebook_size=256,
                        codebook_dim=32, vector_quantization_hidden_dimension=32,
                        num_quantizers=8, num_semantic_quantizers=1, upsample_groups=64)
    _seeded(seed)
    model = MimiModel(config).eval()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("codebook.embed_sum"):
                buffer.normal_()
    out = Path(out)
    model.save_pretrained(out)
    return out


HTSAT_FILE = "htsat.pth"
# No HTSAT weights ship, so the embedded HTSAT is random and its reasoning row tests machinery
# only; at msclap's CLAP 2023 size (33 M parameters) its features alone took 90 s of the
# embedded eval_reasoning@htsat (0.2 s per 7-s window on 2 cores). This Swin shape keeps
# msclap's front end and token grid (the same frames per second) at a fraction of the cost.
TINY_HTSAT = {"embed_dim": 32, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8]}


def build_tiny_htsat(out: str | Path, seed: int, shape: dict | None = TINY_HTSAT) -> Path:
    """msclap's HTSAT audio encoder with random weights, at ``shape`` (None: the CLAP 2023
    configuration, 33 M parameters), saved as a checkpoint in msclap's own format
    (``{"model": {"audio_encoder.*": ...}}``, as ``CLAP_weights_2023.pth``) with the shape in
    ``htsat_shape.json``, so the stage loads it through the same code as the released weights."""
    from semantic_bridge.models.htsat import SHAPE_FILE, build_htsat

    _seeded(seed)
    encoder = build_htsat(shape)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"audio_encoder.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"model": state}, out / HTSAT_FILE)
    if shape is not None:
        (out / SHAPE_FILE).write_text(json.dumps(shape) + "\n")
    return out
