"""Causal-LM hidden states on the codec's frame grid (DESIGN.md §2, the causal rule).

1. Tokenise the transcript with the LLM's own tokenizer (its special tokens included,
   e.g. a BOS, which are fed to the model but never become a frame's target).
2. Give every text token an end time: a token ending inside word ``w`` (chars
   ``[c0, c1)``, spoken ``[s, e]``) ends at ``s + (e - s) * (c - c0) / (c1 - c0)``, where
   ``c`` is the token's last character inside ``w`` — sub-word tokens split the word's
   span in proportion to their characters. Tokens holding no word character
   (punctuation, spaces) take the time of the latest word token before them; leading
   ones take the time of the first word token.
3. Frame ``t`` takes the hidden state of the **last token whose end time
   <= (t + 1) * 0.08 s**. Frames before the first token ends are masked
   (``llm_mask = False``, ``llm = 0``).

A causal LM's state at a token depends only on tokens up to it, so no frame ever sees
text that has not been fully spoken by the end of that frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence, Union

import numpy as np
import torch

from semantic_bridge.config import LlmConfig
from semantic_bridge.base import schemas
from semantic_bridge.base.errors import ConfigError, Skip
from semantic_bridge.teachers.extract import autocast
from semantic_bridge.teachers.layers import Teacher, select_layer
from semantic_bridge.base.words import normalize, transcript_words
from semantic_bridge.base.frames import frame_end_times

# boundary slack: a word ending at 0.16 s must count for the frame ending at 0.16 s even
# when float rounding gives 0.16000000000000003
_EPS = 1e-6


@dataclass
class Tokens:
    ids: list[int]
    end_times: np.ndarray  # [L] seconds; NaN for special tokens (never a frame target)


def token_end_times(text: str, words: Sequence[dict[str, Any]], offsets: Sequence[tuple[int, int]],
                    special: Sequence[bool]) -> np.ndarray:
    """End time of each token (rule 2 above); ``words`` are ``{word, start, end}`` for the
    words of ``transcript_words(text)``, in order."""
    spans = transcript_words(text)
    if len(spans) != len(words):
        raise Skip("word_mismatch", f"{len(words)} timed words for {len(spans)} transcript words")
    for span, w in zip(spans, words):
        if normalize(span.word) != normalize(w["word"]):
            raise Skip("word_mismatch", f"timed word {w['word']!r} for transcript word {span.word!r}")
        if not (w["end"] >= w["start"] >= 0):
            raise Skip("bad_timing", f"{w['word']!r}: start {w['start']} end {w['end']}")
    if not spans:
        raise Skip("no_words", "transcript has no words")
    times = np.full(len(offsets), np.nan)
    j = 0  # first word that may still overlap (tokens and words both run left to right)
    for k, ((a, b), is_special) in enumerate(zip(offsets, special)):
        if is_special:
            continue
        while j < len(spans) and spans[j].end <= a:
            j += 1
        last = None
        i = j
        while i < len(spans) and spans[i].start < b:
            last = i
            i += 1
        if last is not None:
            span, w = spans[last], words[last]
            c = min(b, span.end)
            times[k] = w["start"] + (w["end"] - w["start"]) * (c - span.start) / (span.end - span.start)
    # tokens with no word character: previous word token's time, else the next one's
    text_tokens = [k for k, s in enumerate(special) if not s]
    prev = np.nan
    for k in text_tokens:
        if np.isnan(times[k]):
            times[k] = prev
        else:
            prev = times[k]
    nxt = np.nan
    for k in reversed(text_tokens):
        if np.isnan(times[k]):
            times[k] = nxt
        else:
            nxt = times[k]
    if len(text_tokens) and np.any(np.diff(times[text_tokens]) < 0):
        raise Skip("bad_timing", "word times go backwards")
    return times


def frame_token_index(end_times: np.ndarray, frames: int) -> np.ndarray:
    """Rule 3: for each frame the index of the last token ended by the frame's end, or -1.

    ``end_times`` may hold NaN (special tokens): they are never chosen.
    """
    targets = np.flatnonzero(~np.isnan(end_times))
    ends = end_times[targets]
    count = np.searchsorted(ends, frame_end_times(frames) + _EPS, side="right")
    return np.where(count > 0, targets[np.maximum(count - 1, 0)], -1)


def tokenize(tokenizer, text: str, words: Sequence[dict[str, Any]]) -> Tokens:
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    special = [bool(s) for s in enc["special_tokens_mask"]]
    times = token_end_times(text, words, enc["offset_mapping"], special)
    return Tokens(list(enc["input_ids"]), times)


class LlmExtractor(Teacher):
    name, section = "qwen", "teachers.llm"
    input_columns = ["id", "text", "words", "n_frames"]
    size_column = "n_frames"

    def __init__(self, cfg: LlmConfig, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.max_tokens = int(getattr(self.model.config, "max_position_embeddings", 1 << 30))
        self.features = schemas.llm(cfg.dim)

    def load_processor(self, name_or_path: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if not self.tokenizer.is_fast:
            raise ConfigError(f"{self.section}.model: {name_or_path} needs a fast tokenizer "
                              "(character offsets)")

    def row_bytes(self, frames: int) -> int:
        return int(frames) * (self.cfg.dim * 2 + 1) + 64

    @torch.inference_mode()
    def forward(self, sequences: list[list[int]]) -> list[torch.Tensor]:
        """``hidden_states[layer]`` per token sequence (right-padded batch): ``[L_i, D]``."""
        longest = max(len(s) for s in sequences)
        ids = torch.zeros(len(sequences), longest, dtype=torch.long)
        mask = torch.zeros(len(sequences), longest, dtype=torch.long)
        for i, s in enumerate(sequences):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with autocast(self.device):
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                             output_hidden_states=True, use_cache=False)
        hidden = select_layer(out, self.cfg.layer).float().cpu()
        return [hidden[i, : len(s)] for i, s in enumerate(sequences)]

    def process(self, rows: list[dict[str, Any]]) -> Iterator[Union[dict[str, Any], Skip]]:
        results: list[Union[dict[str, Any], Skip, None]] = [None] * len(rows)
        tokens: dict[int, Tokens] = {}
        for i, row in enumerate(rows):
            try:
                tok = tokenize(self.tokenizer, row["text"], row["words"])
            except Skip as err:
                err.id = row["id"]
                results[i] = err
                continue
            if len(tok.ids) > self.max_tokens:
                results[i] = Skip("too_many_tokens", f"{len(tok.ids)} > {self.max_tokens}", id=row["id"])
                continue
            tokens[i] = tok
        order = sorted(tokens, key=lambda i: len(tokens[i].ids))
        size = self.cfg.batch_size
        for b in range(0, len(order), size):
            batch = order[b : b + size]
            for i, hidden in zip(batch, self.forward([tokens[i].ids for i in batch])):
                frames = int(rows[i]["n_frames"])
                index = frame_token_index(tokens[i].end_times, frames)
                mask = index >= 0
                llm = torch.zeros(frames, hidden.shape[1])
                llm[torch.from_numpy(mask)] = hidden[torch.from_numpy(index[mask])]
                if not torch.isfinite(llm).all():
                    results[i] = Skip("not_finite", "non-finite LLM output", id=rows[i]["id"])
                    continue
                results[i] = {"id": rows[i]["id"], "n_frames": frames, "llm": llm.half().numpy(),
                              "llm_mask": mask}
        yield from results  # type: ignore[misc]
