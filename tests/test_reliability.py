"""Regression tests for the reliability issue: a hang, a crash, inputs that were accepted and
should be refused, checks that came too late, and results that depended on the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from semantic_bridge.base import shards
from semantic_bridge.base.errors import ConfigError, DataError
from semantic_bridge.base.evalsets import make_trials, trial_counts
from semantic_bridge.config import params_from_dict

from conftest import REPO, tone, write_wav


# --------------------------------------------------------------------------- the trial-list hang
@pytest.mark.timeout(30)
def test_unbalanced_test_speakers_cap_the_trial_list_instead_of_hanging():
    utts = [(f"a{i}", "A") for i in range(10)] + [("b0", "B")]
    assert trial_counts(utts) == (45, 10)
    trials = make_trials(utts, 300, 1)
    assert sum(t.label for t in trials) == 45 and sum(1 - t.label for t in trials) == 10
    pairs = {frozenset((t.path1, t.path2)) for t in trials}
    assert len(pairs) == len(trials)  # each pair once
    assert all(("b0.wav" in (t.path1, t.path2)) != t.label for t in trials)


@pytest.mark.timeout(60)
def test_dense_and_sparse_non_target_draws_give_distinct_pairs():
    rng = np.random.default_rng(0)
    for n_spk, per_spk, per_class in ((3, 4, 40), (2, 2, 4), (40, 5, 300)):
        utts = [(f"s{s}u{u}", f"s{s}") for s in range(n_spk) for u in range(per_spk)]
        rng.shuffle(utts)
        trials = make_trials([tuple(u) for u in utts], per_class, 7)
        _, n_non = trial_counts([tuple(u) for u in utts])
        non = [frozenset((t.path1, t.path2)) for t in trials if t.label == 0]
        assert len(non) == len(set(non)) == min(per_class, n_non)


# --------------------------------------------------------------------------- params refused up front
BAD_PARAMS = [
    ({"seed": -1}, "seed"),
    ({"cpu_threads": 0}, "cpu_threads"),
    ({"codebook": {"dropout": 0.3}}, "codebook"),
    ({"data": {"max_shard_size": "lots"}}, "data.max_shard_size"),
    ({"train": {"betas": [0.5]}}, "train.betas"),
    ({"data": {"splits": {"valid_speakers": 0}}}, "data.splits.valid_speakers"),
    ({"data": {"splits": {"test_speakers": 1}}}, "data.splits.test_speakers"),
    ({"data": {"splits": {"dev_speakers": 0}}}, "data.splits.dev_speakers"),
    ({"data": {"splits": {"test_speakers": -2}}}, "data.splits.test_speakers"),
    ({"align": {"batch_size": 0}}, "align.batch_size"),
    ({"teachers": {"llm": {"batch_size": 0}}}, "teachers.llm.batch_size"),
    ({"teachers": {"wavlm": {"batch_seconds": -1}}}, "teachers.wavlm.batch_seconds"),
    ({"train": {"adversarial_start": -1}}, "train.adversarial_start"),
    ({"train": {"grad_clip": -1}}, "train.grad_clip"),
    ({"codebooks": {"kmeans_iters": -1}}, "codebooks.kmeans_iters"),
    ({"codebooks": {"dead_code_ratio": -1}}, "codebooks.dead_code_ratio"),
    ({"data": {"silence_dbfs": 10}}, "data.silence_dbfs"),
    ({"data": {"trials": {"per_class": 0}}}, "data.trials.per_class"),
    ({"data": {"synthetic": {"pitch": [50, 50]}}}, "data.synthetic.pitch"),
    ({"data": {"synthetic": {"pitch": [120]}}}, "data.synthetic.pitch"),
    ({"data": {"synthetic": {"utterances_per_speaker": 1}}}, "data.synthetic.utterances_per_speaker"),
    ({"data": {"sample_rate": 22050}}, "data.sample_rate"),
    ({"codec": {"upsampling_ratios": [8, 6, 5, 2]}}, "codec.upsampling_ratios"),
    ({"train": {"lambdas": {"mel/loss": -1.0}}}, "train.lambdas.mel/loss"),
]


@pytest.mark.parametrize("override, key", BAD_PARAMS, ids=[k for _, k in BAD_PARAMS])
def test_bad_params_are_one_line_naming_the_key(raw_params, override, key):
    raw = json.loads(json.dumps(raw_params))

    def merge(into, new):
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = v

    merge(raw, override)
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw, "params.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("params.yaml: ") and key in message


def test_a_params_error_costs_no_torch_import(tmp_path, raw_params):
    """Every stage script loads params before it imports its runner (and torch)."""
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    bad = dict(raw_params, seed=-1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{REPO / 'src'}"}
    required = {"eval_reasoning.py": ["--encoder", "htsat", "--metrics", "m.json", "--plot", "p.tsv"]}
    for script in sorted((REPO / "stages").glob("*.py")):
        proc = subprocess.run([sys.executable, str(script), "--params", str(tmp_path / "params.yaml"),
                               *required.get(script.name, [])],
                              env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 2, (script.name, proc.stderr[-1500:])
        assert proc.stderr.strip().splitlines()[-1] == "error: " + f"{tmp_path / 'params.yaml'}: seed: must be >= 0, got -1"


def test_numerics_are_pinned_before_torch_loads(tmp_path):
    code = ("import os, sys; from semantic_bridge.base.stage import pin_numerics; pin_numerics(1); "
            "import torch; print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads(), "
            "os.environ.get('MKL_CBWR'), torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(REPO / "src")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[:2] == ["1", "1"]
    if os.uname().machine == "x86_64":
        assert out[2] == "AVX2" and out[3] in ("AVX2", "DEFAULT")  # never the AVX-512 kernels


# --------------------------------------------------------------------------- checks before any audio is decoded
def _manifest(root: Path, rows: list[dict], name: str = "m.jsonl", bom: bool = False) -> Path:
    path = root / name
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def _manifest_params(tiny_raw, path, **splits):
    tiny_raw["data"]["source"] = "manifest"
    tiny_raw["data"]["manifest"]["path"] = str(path)
    tiny_raw["data"]["splits"] = {"valid_speakers": 1, "test_speakers": 2, "dev_speakers": 1, **splits}
    return params_from_dict(tiny_raw)


def test_split_plans_that_cannot_work_fail_before_any_audio_is_read(tmp_path, tiny_raw):
    # one utterance per speaker: no same-speaker trial is possible; the audio does not even exist,
    # so reaching any decoding would report missing files instead of this
    rows = [{"id": f"u{s}", "audio": f"nowhere/{s}.wav", "text": "hello", "speaker": f"s{s}"} for s in range(8)]
    params = _manifest_params(tiny_raw, _manifest(tmp_path, rows))
    from semantic_bridge.corpus.prepare import run_prepare

    with pytest.raises(DataError, match="test speakers have one utterance each"):
        run_prepare(params.data, params.seed, tmp_path / "out")
    assert not (tmp_path / "out.partial").exists()


# --------------------------------------------------------------------------- manifest corner cases
def test_manifest_keeps_zero_ids_and_speakers_numeric_text_and_a_bom(tmp_path, tiny_raw):
    from semantic_bridge.corpus.sources import ManifestSource

    for s in range(5):
        for u in range(2):
            write_wav(tmp_path / f"{s}_{u}.wav", tone(1.0, 16000, 200 + 30 * s), 16000)
    rows = [{"id": s * 2 + u, "audio": f"{s}_{u}.wav", "text": 12345 if u else "words", "speaker": s}
            for s in range(5) for u in range(2)]
    for fmt in ("jsonl", "csv"):
        if fmt == "jsonl":
            path = _manifest(tmp_path, rows, bom=True)
        else:
            path = tmp_path / "m.csv"
            lines = ["id,audio,text,speaker"] + [f"{r['id']},{r['audio']},{r['text']},{r['speaker']}" for r in rows]
            path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
        source = ManifestSource(_manifest_params(tiny_raw, path).data)
        got = list(source.rows())
        assert len(got) == 10 and all(hasattr(r, "load") for r in got), fmt  # none skipped
        assert got[0].id == "0" and got[0].speaker == "0" and got[1].text == "12345"


def test_a_long_file_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    import soundfile as sf

    from semantic_bridge.base import audio as A
    from semantic_bridge.base.errors import Skip

    path = write_wav(tmp_path / "long.wav", np.zeros(16000 * 40, np.float32) + 0.1, 16000)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("decoded a file the header rules out"))
    with pytest.raises(Skip) as info:
        A.read_audio(path, max_seconds=30.0)
    assert info.value.reason == A.TOO_LONG


# --------------------------------------------------------------------------- empty references
def test_a_reference_without_words_is_a_counted_skip_in_eval_wer(tmp_path, prepared_tiny, factory_raw):
    from eval_fixtures import tiny_codec_checkpoint

    from semantic_bridge.base import schemas
    from semantic_bridge.evaluate.metrics import has_words
    from semantic_bridge.evaluate.wer import run_wer

    assert not has_words("Um, uh, hmm.") and has_words("Um, the river.")
    corpus = tmp_path / "corpus"
    test_rows = list(shards.iter_rows(prepared_tiny / "corpus" / "test"))
    test_rows[1] = dict(test_rows[1], text="Um, uh, hmm.")
    for split, rows in (("test", test_rows), ("train", list(shards.iter_rows(prepared_tiny / "corpus" / "train")))):
        with shards.ShardedWriter(corpus / split, schemas.CORPUS) as w:
            w.write_all(rows)
    params = params_from_dict(factory_raw)
    params.eval.wer.max_utterances = 3
    codec = tiny_codec_checkpoint(tmp_path / "codec.pt", params, [r["audio"] for r in test_rows])
    m = run_wer(params.eval.wer, "embedded", str(corpus), str(codec), str(tmp_path / "wer.csv"))
    assert m["skipped"] == {"empty_reference": 1} and m["utterances"] == 2


def test_swap_never_takes_an_utterance_without_words_as_a():
    from semantic_bridge.evaluate.swap import pick_pairs

    pairs = pick_pairs(["a", "a", "b", "b"], 8, 0, scorable=[False, True, True, False])
    assert pairs and {a for a, _ in pairs} <= {1, 2}


# --------------------------------------------------------------------------- alignment that does not match the audio
def test_transcripts_that_do_not_match_the_audio_are_skipped_as_text_mismatch(prepared_tiny):
    from semantic_bridge.align.common import ALIGN_FAILED, TEXT_MISMATCH, Aligned, Item
    from semantic_bridge.align.pocketsphinx import PocketsphinxAligner
    from semantic_bridge.base.words import normalize, transcript_words

    rows = [r for split in ("train", "test", "dev", "valid")
            for r in shards.iter_rows(prepared_tiny / "corpus" / split)][:12]
    assert len(rows) == 12

    def words(text):
        return [normalize(s.word) for s in transcript_words(text)]

    aligner = PocketsphinxAligner(1, params_from_dict({}).align.pocketsphinx_max_gap)
    try:
        matched = aligner.align_batch([Item(r["audio"], r["sample_rate"], words(r["text"]), []) for r in rows])
        other = aligner.align_batch([Item(r["audio"], r["sample_rate"], words(rows[(i + 5) % 12]["text"]), [])
                                     for i, r in enumerate(rows)])
        many = aligner.align_batch([Item(rows[0]["audio"][: 3 * 24000], 24000,
                                         words(" ".join(r["text"] for r in rows[1:4])), [])])
    finally:
        aligner.close()
    assert sum(isinstance(o, Aligned) for o in matched) >= 10  # what the audio says passes
    reasons = Counter(getattr(o, "reason", "aligned") for o in other)
    assert reasons["aligned"] <= 2 and reasons[TEXT_MISMATCH] >= 3, reasons  # others' words do not
    assert getattr(many[0], "reason", None) in (TEXT_MISMATCH, ALIGN_FAILED)  # 20+ words on 3 s


# --------------------------------------------------------------------------- reproducible training
def test_two_training_runs_give_identical_models(tmp_path, raw_params):
    """What is promised: on one machine, with the pinned kernels and thread count, a run is
    bit-for-bit reproducible (the resume test checks a resumed run against a clean one too)."""
    import torch

    from test_train import _stage, tiny_train_raw, write_merged

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_train_raw(raw_params, steps=5)))
    write_merged(tmp_path / "merged")
    for run in ("a", "b"):
        proc = _stage(tmp_path / "params.yaml", tmp_path / run, env_extra={"OMP_NUM_THREADS": "2"})
        assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = (torch.load(tmp_path / r / "codec.pt", weights_only=True)["state_dict"] for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
