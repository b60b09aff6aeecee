"""eval_edit: the splice's frame arithmetic by hand, the baseline splice, word scoring, the seeded
plan with its counted skips, and the stage on the tiny corpus."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semantic_bridge.evaluate import edit as ED

from test_eval import codec_path, eval_params, prepared  # noqa: F401  (module fixtures)


def test_frame_span_covers_every_frame_the_word_touches():
    # frames are 80 ms: [0.16, 0.30) touches frames 2 (0.16-0.24) and 3 (0.24-0.32)
    assert ED.frame_span(0.16, 0.30, 50) == (2, 4)
    assert ED.frame_span(0.17, 0.23, 50) == (2, 3)  # inside one frame
    assert ED.frame_span(3.9, 4.5, 50) == (48, 50)  # clipped to the utterance
    assert ED.frame_span(4.5, 4.6, 50) == (50, 50)  # past the end: empty


def test_stretch_index_repeats_or_drops_nearest_frames():
    assert ED.stretch_index(2, 5).tolist() == [0, 0, 0, 1, 1]
    assert ED.stretch_index(5, 2).tolist() == [0, 2]
    assert ED.stretch_index(3, 3).tolist() == [0, 1, 2]


def test_splice_codes_by_hand():
    # A: 4 levels x 8 frames, value = 100 * level + frame; donor: 1000 + the same
    a = (100 * torch.arange(4)[:, None] + torch.arange(8)[None])[None]
    d = a + 1000
    out = ED.splice_codes(a, (3, 5), d, (1, 4), content_levels=2)
    assert out.shape == (1, 4, 8 - 2 + 3)
    # content levels 0, 1: A's frames 0-2, the donor's frames 1-3, A's frames 5-7
    assert out[0, 0].tolist() == [0, 1, 2, 1001, 1002, 1003, 5, 6, 7]
    assert out[0, 1].tolist() == [100, 101, 102, 1101, 1102, 1103, 105, 106, 107]
    # voice levels 2, 3: A's own codes, the old span (frames 3, 4) stretched to 3 frames
    assert out[0, 2].tolist() == [200, 201, 202, 203, 203, 204, 205, 206, 207]
    assert out[0, 3].tolist() == [300, 301, 302, 303, 303, 304, 305, 306, 307]
    with pytest.raises(ValueError, match="empty span"):
        ED.splice_codes(a, (3, 3), d, (1, 4), 2)


def test_crossfade_splice_lengths_and_joins():
    a = np.ones(100, np.float32)
    donor = np.full(60, 3.0, np.float32)
    out = ED.crossfade_splice(a, (40, 70), donor, (10, 40), fade=10)
    # 40 + 30 + 30 samples, minus one 10-sample overlap per join
    assert len(out) == 40 + 30 + 30 - 20
    assert out[0] == 1.0 and out[-1] == 1.0 and 3.0 in out
    assert np.all(np.diff(out[30:40]) >= 0)  # the first fade rises from A to the donor
    assert len(ED.crossfade_splice(a, (40, 70), donor, (10, 40), fade=0)) == 100


def test_word_correct_marks_exactly_the_matched_reference_words():
    words = ["The", "green", "driver", "cleaned", "shoes."]
    assert ED.word_correct(words, "the green driver cleaned shoes") == [True] * 5
    assert ED.word_correct(words, "the red driver cleaned shoes") == [True, False, True, True, True]
    assert ED.word_correct(words, "the green cleaned shoes") == [True, True, False, True, True]
    assert ED.word_correct(words, "") == [False] * 5


def _row(uid, speaker, words):
    return {"id": uid, "speaker": speaker,
            "words": [{"word": w, "start": 0.3 * i, "end": 0.3 * i + 0.2} for i, w in enumerate(words)]}


def test_plan_prefers_other_speakers_and_counts_its_skips():
    test = [_row("a/0", "a", ["The", "cat", "sat", "down"]), _row("b/0", "b", ["A", "dog", "ran", "home"])]
    pool = {}
    for row in test:
        for i, w in enumerate(row["words"]):
            pool.setdefault(ED.word_key(w["word"]), []).append(
                ED.Occurrence(row["id"], row["speaker"], i, w["start"], w["end"]))
    vocabulary = ["cat", "dog", "ran", "zebra"]  # zebra is never aligned
    edits, skipped = ED.plan_edits(test, pool, 6, seed=0, vocabulary=vocabulary)
    assert len(edits) == 6 and ED.plan_edits(test, pool, 6, seed=0, vocabulary=vocabulary)[0] == edits
    for e in edits:
        row = next(r for r in test if r["id"] == e.a)
        assert 0 < e.position < len(row["words"]) - 1  # never the first or last word
        assert e.new != ED.word_key(e.old) and e.donor.uid != e.a
        assert e.donor.speaker != row["speaker"]  # both words exist in the other speaker's row
    assert skipped["edge"] > 0 and skipped["not_aligned"] > 0  # counted, with their reason
    assert set(skipped) <= set(ED.SKIP_REASONS)


def test_edit_stage(eval_params, prepared, codec_path, tmp_path):  # noqa: F811
    from semantic_bridge.align.run import run_align

    align = dataclasses.replace(eval_params.align, backend="given")  # the synthesiser's word times
    aligned = tmp_path / "aligned"
    run_align(align, prepared / "corpus", aligned, "1MB")
    cfg = dataclasses.replace(eval_params.eval.edit, edits=4, save_wavs=1)
    m = ED.run_edit(cfg, eval_params.eval.wer, eval_params.eval.swap, "embedded", eval_params.seed,
                    str(prepared / "corpus"), str(aligned), str(codec_path), str(tmp_path / "wavs"))
    assert m["edits"] == 4 and m["requested"] == 4 and set(m["skipped"]) == set(ED.SKIP_REASONS)
    assert list(m["rows"]) == ["codec_edit", "waveform_splice", "codec_resynthesis"]
    for row in m["rows"].values():
        for key in ("edited_word_accuracy", "other_words_accuracy"):
            assert 0 <= row[key] <= 1
        assert -1 <= row["speaker_similarity_to_a"] <= 1 and row["wer"] >= 0
    # the waveform splice keeps A's own samples around the word: Whisper hears A's other words
    assert m["rows"]["waveform_splice"]["other_words_accuracy"] > 0.5
    assert sorted(p.name for p in (tmp_path / "wavs").iterdir()) == [
        "edit00_A.wav", "edit00_baseline.wav", "edit00_donor.wav", "edit00_edit.wav", "edits.tsv"]
    lines = (tmp_path / "wavs" / "edits.tsv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("edit\tA\tdonor")
