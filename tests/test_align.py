"""Forced alignment: real pocketsphinx alignment against espeak-ng's own word times,
skip reasons, the given backend, the error statistics, and NeMo CTC on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semantic_bridge.config import params_from_dict
from semantic_bridge.align import common as C
from semantic_bridge.align import run as A
from semantic_bridge.align.nemo import NemoAligner
from semantic_bridge.align.pocketsphinx import PocketsphinxAligner
from semantic_bridge.base.errors import Skip
from semantic_bridge.base import shards
from semantic_bridge.base.words import normalize, transcript_words

from conftest import tiny_nemo_frontend, tone

MAX_GAP = params_from_dict({}).align.pocketsphinx_max_gap


@pytest.fixture(scope="module")
def sphinx_run(prepared_tiny, factory_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("aligned") / "aligned"
    result = A.run_align(params_from_dict(factory_raw).align, prepared_tiny / "corpus", out, "1MB")
    return out, result


def test_pocketsphinx_aligns_the_embedded_corpus_close_to_espeak_timings(sphinx_run, prepared_tiny):
    out, result = sphinx_run
    metrics = result.metrics("embedded", params_from_dict({}).align)
    total = sum(shards.num_rows(prepared_tiny / "corpus" / s) for s in ("train", "valid", "test"))
    assert metrics["aligned_total"] + metrics["skipped_total"] == total
    assert metrics["aligned_total"] >= 0.8 * total
    err = metrics["boundary_error"]
    assert err["utterances"] == metrics["aligned_total"]
    # measured 58 / 142 ms on the full corpus since the 50 ms word gap (24 / 53 ms without it)
    assert err["mean_ms"] < 75 and err["p90_ms"] < 170
    json.dumps(metrics)  # serialisable
    for split in ("train", "valid", "test"):
        corpus_ids = [r["id"] for r in shards.iter_rows(prepared_tiny / "corpus" / split, columns=["id"])]
        for row in shards.iter_rows(out / split):
            assert row["id"] in corpus_ids and row["backend"] == "pocketsphinx"
            spans = transcript_words(row["text"])
            assert [w["word"] for w in row["words"]] == [s.word for s in spans]
            starts = np.array([w["start"] for w in row["words"]])
            ends = np.array([w["end"] for w in row["words"]])
            assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-6)
            assert ends[-1] <= row["n_frames"] * 0.08 + 0.02


def _item(text, audio, truth=()):
    words = [normalize(s.word) for s in transcript_words(text)]
    return C.Item(audio, 24000, words, list(truth))


def test_pocketsphinx_skip_reasons():
    aligner = PocketsphinxAligner(1, MAX_GAP)
    speechless = tone(0.3, 24000)
    oov, impossible = aligner.align_batch([
        _item("The zqxvbt sang.", tone(2.0, 24000)),
        _item("one two three four five six seven eight nine ten eleven twelve", speechless),
    ])
    assert isinstance(oov, Skip) and oov.reason == C.OOV and "zqxvbt" in str(oov)
    assert isinstance(impossible, Skip) and impossible.reason == C.ALIGN_FAILED


def test_given_backend_and_its_reasons():
    truth = [{"word": "Hello", "start": 0.1, "end": 0.4}, {"word": "world", "start": 0.5, "end": 0.9}]
    aligner = A.GivenAligner()
    ok, none, other = aligner.align_batch([
        _item("Hello, world!", tone(1.0, 24000), truth),
        _item("Hello, world!", tone(1.0, 24000)),
        _item("Goodbye world", tone(1.0, 24000), truth),
    ])
    assert ok.times == [(0.1, 0.4), (0.5, 0.9)] and ok.gap is None
    assert none.reason == C.NO_TIMINGS and other.reason == C.WORD_MISMATCH


def test_rows_without_words_are_counted(tmp_path):
    from collections import Counter

    rows = [{"id": "a", "text": "...", "audio": tone(1.0, 24000), "sample_rate": 24000, "words": []},
            {"id": "b", "text": "Hi there", "audio": tone(1.0, 24000), "sample_rate": 24000,
             "words": [{"word": "Hi", "start": 0.0, "end": 0.3}, {"word": "there", "start": 0.3, "end": 0.8}]}]
    result, counts = A.AlignResult(), Counter()
    out = list(A._align_rows(A.GivenAligner(), rows, result, counts))
    assert [r["id"] for r in out] == ["b"] and counts == {C.NO_WORDS: 1}
    assert out[0]["n_frames"] == 13 and result.errors.summary()["mean_ms"] == 0.0


def test_boundary_error_statistics_match_numpy():
    rng = np.random.default_rng(0)
    stats = A.BoundaryErrors()
    all_errors = []
    for _ in range(50):
        n = int(rng.integers(1, 8))
        truth_t = np.sort(rng.uniform(0, 5, 2 * n))
        got_t = truth_t + rng.normal(0, 0.03, 2 * n)
        stats.add(list(zip(got_t[::2], got_t[1::2])),
                  [{"word": "w", "start": a, "end": b} for a, b in zip(truth_t[::2], truth_t[1::2])])
        all_errors.extend(np.abs(got_t - truth_t) * 1000)
    summary = stats.summary()
    assert summary["boundaries"] == len(all_errors)
    assert summary["mean_ms"] == pytest.approx(np.mean(all_errors), abs=0.01)
    assert abs(summary["p90_ms"] - np.percentile(all_errors, 90)) <= 1.0  # 1 ms bins
    assert A.BoundaryErrors().summary() is None


# --------------------------------------------------------------------------- NeMo
LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def _tiny_nemo_ctc(path):
    """A character CTC EncDecCTCModel from a hand-written config (random weights), saved
    as a .nemo file: the same file type `align.nemo_model` takes at paper scale."""
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({
        **tiny_nemo_frontend(kernel=11, stride=2), "labels": LABELS,
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 48,
                    "num_classes": len(LABELS), "vocabulary": LABELS},
    })
    EncDecCTCModel(cfg=cfg).save_to(str(path))
    return path


@pytest.mark.slow
def test_nemo_ctc_backend_on_a_tiny_model(tmp_path):
    path = _tiny_nemo_ctc(tmp_path / "tiny_ctc.nemo")
    aligner = NemoAligner(str(path), batch_size=2, max_gap=float("inf"))  # random weights hear nothing
    assert aligner.blank == len(LABELS) and aligner.tokenizer is None
    audio = tone(2.0, 24000)
    got = aligner.align_batch([_item("hello big world", audio), _item("it's fine", audio[:30000]),
                               _item("route 66", audio), _item("many words " * 40, audio[:4800])])
    for aligned, n in ((got[0], 3), (got[1], 2)):
        times = aligned.times
        assert len(times) == n and aligned.gap >= 0
        flat = np.array(times).ravel()
        assert np.all(np.diff(flat) >= 0) and flat[0] >= 0 and flat[-1] <= 2.0 + 0.02
        assert all(b > a for a, b in times)
    assert got[2].reason == C.OOV  # "66": no digits in the vocabulary
    assert got[3].reason == C.ALIGN_FAILED  # more characters than CTC frames
    strict = NemoAligner(str(path), batch_size=2, max_gap=1e-9)  # the confidence check's path
    assert strict.align_batch([_item("hello big world", audio)])[0].reason == C.TEXT_MISMATCH
    with pytest.raises(FileNotFoundError):
        NemoAligner(str(tmp_path / "missing.nemo"), batch_size=1, max_gap=1.0)


def test_pocketsphinx_alignment_does_not_depend_on_what_came_before(prepared_tiny):
    rows = list(shards.iter_rows(prepared_tiny / "corpus" / "train"))[:12]
    items = [_item(r["text"], r["audio"]) for r in rows]
    aligner = PocketsphinxAligner(1, MAX_GAP)
    forward = aligner.align_batch(items)
    backward = aligner.align_batch(items[::-1])[::-1]
    assert [str(t) for t in forward] == [str(t) for t in backward]
    assert sum(isinstance(t, C.Aligned) for t in forward) >= 8
