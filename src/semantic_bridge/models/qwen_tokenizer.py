"""The Qwen2 / Qwen2.5 tokenizer from its BPE ranks (``qwen.tiktoken``, ``models/weights.py``).

Qwen2's tokenizer is a byte-level BPE over these 151,643 ranks with Qwen's pre-tokenisation
pattern (contractions, letter runs with an optional leading non-letter, *single* digits,
punctuation runs, newlines, spaces) and special tokens after the ranks. transformers' own
tiktoken converter builds the fast tokenizer (with character offsets, which the token -> frame
rule needs); no code of the carrier package is used.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2's split pattern: as GPT-4's, but every digit is its own pre-token (\p{N}, not \p{N}{1,3})
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 151643, 151644, 151645


def qwen_tokenizer(ranks: str | Path):
    """A ``PreTrainedTokenizerFast`` equal to Qwen2.5's on text (same ids, byte-level offsets)."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN_PATTERN).converted()
    backend.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=SPECIAL[0], pad_token=SPECIAL[0])
