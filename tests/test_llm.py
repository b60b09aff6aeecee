"""The causal token -> frame rule, the hidden-layer index, and the qwen extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semantic_bridge.config import ConfigError, LlmConfig
from semantic_bridge.teachers.layers import load_for_layer
from semantic_bridge.base.errors import Skip
from semantic_bridge.teachers.llm import LlmExtractor, frame_token_index, token_end_times
from semantic_bridge.corpus.sentences import generate_sentences
from semantic_bridge.base.words import transcript_words
from semantic_bridge.base.frames import frame_end_times

from conftest import TINY_LLM

TEXT = "Hello, big world."
WORDS = [{"word": "Hello", "start": 0.0, "end": 0.5}, {"word": "big", "start": 0.6, "end": 0.8},
         {"word": "world", "start": 1.0, "end": 1.6}]
# BOS, "Hel" "lo" "," " big" " wor" "ld" "."
OFFSETS = [(0, 0), (0, 3), (3, 5), (5, 6), (6, 10), (10, 14), (14, 16), (16, 17)]
SPECIAL = [True] + [False] * 7


def test_token_end_times_hand_computed():
    times = token_end_times(TEXT, WORDS, OFFSETS, SPECIAL)
    assert np.isnan(times[0])  # special token: never a target
    # sub-word tokens split the word's span by characters: "Hel" = 3/5 of "Hello" (0.5 s)
    # "wor" ends at char 14 of "world" [11, 16): 1.0 + 0.6 * 3/5; punctuation inherits
    np.testing.assert_allclose(times[1:], [0.3, 0.5, 0.5, 0.8, 1.36, 1.6, 1.6])


def test_frame_rule_hand_computed():
    times = token_end_times(TEXT, WORDS, OFFSETS, SPECIAL)
    index = frame_token_index(times, 25)
    expected = np.full(25, -1)
    expected[3:6] = 1  # frames ending .32 .40 .48: "Hel" (ends .30) is the last one ended
    expected[6:9] = 3  # ends .56 .64 .72: "lo" and "," end at .50; the later token wins
    expected[9:16] = 4  # from .80 (exactly when "big" ends: boundary included) to 1.28
    expected[16:19] = 5  # from 1.36 (exactly "wor")
    expected[19:] = 7  # from 1.60: "ld" and "." end; the last token whose end <= frame end
    np.testing.assert_array_equal(index, expected)
    ends = frame_end_times(25)
    chosen = index >= 0
    assert np.all(times[index[chosen]] <= ends[chosen] + 1e-9)  # never a token from the future


def test_leading_punctuation_takes_the_first_word_time():
    text = '"Yes," she said.'
    words = [{"word": "Yes", "start": 0.1, "end": 0.4}, {"word": "she", "start": 0.5, "end": 0.7},
             {"word": "said", "start": 0.7, "end": 1.0}]
    offsets = [(0, 1), (1, 4), (4, 6), (6, 10), (10, 15), (15, 16)]
    times = token_end_times(text, words, offsets, [False] * 6)
    np.testing.assert_allclose(times, [0.4, 0.4, 0.4, 0.7, 1.0, 1.0])


@pytest.mark.parametrize("words, reason", [
    (WORDS[:2], "word_mismatch"),
    ([{**WORDS[0], "word": "Goodbye"}] + WORDS[1:], "word_mismatch"),
    ([WORDS[0], {"word": "big", "start": 0.6, "end": 0.2}, WORDS[2]], "bad_timing"),
    ([WORDS[0], WORDS[1], {"word": "world", "start": 0.1, "end": 0.3}], "bad_timing"),
])
def test_inconsistent_timings_are_reasons_not_crashes(words, reason):
    with pytest.raises(Skip) as info:
        token_end_times(TEXT, words, OFFSETS, SPECIAL)
    assert info.value.reason == reason


def test_no_words_is_a_reason():
    with pytest.raises(Skip) as info:
        token_end_times("...", [], [(0, 3)], [False])
    assert info.value.reason == "no_words"


# --------------------------------------------------------------------------- with the model
@pytest.fixture(scope="module")
def extractor(tiny_models):
    return LlmExtractor(LlmConfig(model=str(tiny_models["qwen"]), **TINY_LLM), torch.device("cpu"))


def _timed(text: str, rng: np.random.Generator, start: float = 0.0, first: int = 0) -> list[dict]:
    out, t = [], start
    for span in transcript_words(text)[first:]:
        a = t + rng.uniform(0.0, 0.15)
        t = a + rng.uniform(0.1, 0.5)
        out.append({"word": span.word, "start": a, "end": t})
    return out


def _row(row_id, text, words, frames):
    return {"id": row_id, "text": text, "words": words, "n_frames": frames}


def test_causality_changing_later_text_never_changes_earlier_frames(extractor):
    """Property: texts that agree on the words spoken up to tau give identical frames up to tau."""
    rng = np.random.default_rng(0)
    sentences = generate_sentences(40, seed=3)
    checked = changed = 0
    for a_text, b_text in zip(sentences[::2], sentences[1::2]):
        a_words = _timed(a_text, rng)
        k = int(rng.integers(1, len(a_words) - 1))  # keep words 0..k-1 of A
        tau = a_words[k - 1]["end"]
        a_spans, b_spans = transcript_words(a_text), transcript_words(b_text)
        # B = A's first k words (as written in A) + B's later words, spoken after tau
        b_text = a_text[: a_spans[k - 1].end] + " " + b_text[b_spans[min(k, len(b_spans) - 1)].start:]
        b_words = a_words[:k] + _timed(b_text, rng, start=tau, first=k)
        frames = int(np.ceil(max(a_words[-1]["end"], b_words[-1]["end"]) / 0.08)) + 2
        out_a, out_b = list(extractor.process([_row("a", a_text, a_words, frames),
                                               _row("b", b_text, b_words, frames)]))
        early = frame_end_times(frames) <= tau
        assert early.any()
        np.testing.assert_array_equal(out_a["llm_mask"][early], out_b["llm_mask"][early])
        np.testing.assert_allclose(out_a["llm"][early].astype(np.float32), out_b["llm"][early].astype(np.float32),
                                   atol=2e-3)
        checked += int(early.sum())
        changed += int(not np.allclose(out_a["llm"][~early], out_b["llm"][~early], atol=1e-3))
    assert checked > 50 and changed >= 15  # the later frames did change: the test has teeth


def test_batched_equals_one_by_one_and_masks_leading_frames(extractor):
    rng = np.random.default_rng(1)
    rows = []
    for i, text in enumerate(generate_sentences(6, seed=5)):
        words = _timed(text, rng, start=0.3)
        rows.append(_row(f"r{i}", text, words, int(np.ceil(words[-1]["end"] / 0.08)) + 1))
    batched = list(extractor.process(rows))
    for row, out in zip(rows, batched):
        (single,) = extractor.process([row])
        assert out["id"] == row["id"] and out["llm"].shape == (row["n_frames"], 64)
        np.testing.assert_allclose(out["llm"].astype(np.float32), single["llm"].astype(np.float32), atol=2e-3)
        # nothing has been fully spoken in the first frames (first word ends > 0.4 s)
        first_end = row["words"][0]["end"]
        assert not out["llm_mask"][frame_end_times(row["n_frames"]) < first_end].any()
        assert out["llm_mask"][-1] and not out["llm"][~out["llm_mask"]].any()


def test_bad_rows_are_skipped_with_reasons(extractor):
    good = _row("g", TEXT, WORDS, 25)
    bad = _row("b", TEXT, WORDS[:2], 25)
    out = list(extractor.process([bad, good]))
    assert out[0].reason == "word_mismatch" and out[0].id == "b"
    assert out[1]["id"] == "g"


# --------------------------------------------------------------------------- the layer index
def _block_outputs(model, blocks):
    captured = {}
    for i, block in enumerate(blocks):
        block.register_forward_hook(lambda m, a, o, i=i: captured.__setitem__(i, o[0] if isinstance(o, tuple) else o))
    return captured


def test_qwen_layer_27_is_the_raw_output_of_block_26(tiny_models):
    from transformers import AutoModel

    full = AutoModel.from_pretrained(tiny_models["qwen"]).eval()
    assert full.config.num_hidden_layers == 28  # as Qwen2.5-1.5B: hidden_states 0..28
    captured = _block_outputs(full, full.layers)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        ref = full(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(ref.hidden_states[27], captured[26])  # 27 = layers[26], raw
    torch.testing.assert_close(ref.hidden_states[28], ref.last_hidden_state)  # 28 = normed
    for layer in (27, 28, 3, 0):
        cut = load_for_layer(str(tiny_models["qwen"]), layer, "teachers.llm.layer")
        assert len(cut.layers) == min(layer + 1, 28)
        with torch.no_grad():
            got = cut(input_ids=ids, output_hidden_states=True).hidden_states[layer]
        torch.testing.assert_close(got, ref.hidden_states[layer])


def test_layer_and_dim_errors_name_the_key(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="teachers.llm.layer: 29 is out of range"):
        load_for_layer(str(tiny_models["qwen"]), 29, "teachers.llm.layer")
    with pytest.raises(ConfigError, match="teachers.llm.dim"):
        LlmExtractor(LlmConfig(model=str(tiny_models["qwen"]), layer=27, dim=1536), torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="teachers.llm.model"):
        LlmExtractor(LlmConfig(model=str(tmp_path / "nope")), torch.device("cpu"))
