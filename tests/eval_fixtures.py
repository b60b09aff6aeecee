"""Tiny stand-ins for the evaluation tests: a codec checkpoint with initialised codebooks, and a
Whisper checkpoint (random weights, a byte-level BPE trained here, the special tokens Whisper's
generation needs), saved to disk and loaded back through the stages' own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from semantic_bridge.codec.model import BridgeCodec
from semantic_bridge.config import CodebooksConfig, Params, to_dict


def tiny_codec_checkpoint(path: Path, params: Params, audios: list[np.ndarray], size: int = 64) -> Path:
    """A random codec whose codebooks are k-means-initialised on ``audios`` (one training-mode
    pass), saved like the train stage saves it."""
    torch.manual_seed(0)
    books = CodebooksConfig(size=size, kmeans_iters=2)
    codec = BridgeCodec.build(params.codec, books, params.data.sample_rate)
    n = min(len(a) for a in audios)
    batch = torch.from_numpy(np.stack([a[:n] for a in audios]).astype(np.float32))[:, None]
    codec.train()
    with torch.no_grad():
        codec(batch)
    codec.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(codec.checkpoint(step=7, params=to_dict(params)), path)
    return path


WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>",
                    "<|notimestamps|>", "<|nocaptions|>"]


def tiny_whisper(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast)

    from semantic_bridge.corpus.sentences import generate_sentences

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(generate_sentences(300, 0), trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=WHISPER_SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    out.mkdir(parents=True, exist_ok=True)
    bpe.save(str(out / "bpe.json"))
    eot = "<|endoftext|>"
    tok = WhisperTokenizerFast(tokenizer_file=str(out / "bpe.json"), unk_token=eot, bos_token=eot,
                               eos_token=eot, pad_token=eot)
    ids = {s: tok.convert_tokens_to_ids(s) for s in WHISPER_SPECIALS}
    config = WhisperConfig(
        vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        num_mel_bins=80, max_target_positions=64, decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids[eot], pad_token_id=ids[eot], bos_token_id=ids[eot])
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[eot], pad_token_id=ids[eot],
        is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"]}, no_timestamps_token_id=ids["<|notimestamps|>"],
        max_length=64)
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(out)
    return out
