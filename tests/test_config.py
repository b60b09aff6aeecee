"""Typed params: the committed file, and one clear line for each kind of mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from semantic_bridge.config import ConfigError, Params, load_params, params_from_dict, to_dict
from conftest import REPO


def test_committed_params_load_and_match_code_defaults():
    # code defaults must not contradict the config file
    assert to_dict(load_params(REPO / "params.yaml")) == to_dict(Params())


def test_bitrate_is_computed_from_the_config():
    cb = Params().codebooks
    assert cb.n_levels == 9
    assert cb.bitrate_bps(12.5) == pytest.approx(1237.5)
    assert cb.bitrate_bps(12.5, levels=2) == pytest.approx(275.0)


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"data": {"sourc": "synthetic"}}, "data.sourc"),
        ({"codebooks": {"dropout": "lots"}}, "codebooks.dropout"),
        ({"codebooks": {"dropout": 1.5}}, "codebooks.dropout"),
        ({"teachers": {"wavlm": {"layer": "last"}}}, "teachers.wavlm.layer"),
        ({"data": {"source": "youtube"}}, "data.source"),
        ({"data": {"source": "hf"}}, "data.hf.path"),
        ({"data": {"source": "manifest"}}, "data.manifest.path"),
        ({"data": {"trials": {"voxceleb1_list": "x.txt"}}}, "data.trials.voxceleb1"),
        ({"data": {"synthetic": {"n_speakers": 5}}}, "data.synthetic.n_speakers"),
        ({"train": {"lambdas": {"mel/loss": "big"}}}, "train.lambdas.mel/loss"),
        ({"eval": {"wer": {"beam": 5}}}, "eval.wer.beam"),
        ({"teachers": {"wavlm": {"whisper_window_seconds": 10.01}}}, "teachers.wavlm.whisper_window_seconds"),
        ({"teachers": {"wavlm": {"whisper_window_seconds": 40.0}}}, "teachers.wavlm.whisper_window_seconds"),
        ({"eval": {"reasoning": {"train_eval_questions": -1}}}, "eval.reasoning.train_eval_questions"),
        ({"scale": "huge"}, "scale"),
        ({"extra_section": {}}, "extra_section"),
    ],
)
def test_bad_params_fail_with_one_line_naming_the_key(override, expected):
    with pytest.raises(ConfigError) as info:
        params_from_dict(override, "params.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("params.yaml: ")
    assert expected in msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(scalar)


def test_values_are_typed(tiny_raw):
    tiny_raw["codebooks"]["dropout"] = "0.3"  # as `dvc exp run -S codebooks.dropout=0.3` may write it
    p = params_from_dict(tiny_raw)
    assert p.codebooks.dropout == 0.3 and isinstance(p.codebooks.dropout, float)
    assert p.data.synthetic.n_speakers == 8


def test_stage_reports_bad_params_in_one_line_before_any_work(tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["synthetic"]["n_speaker"] = 3  # typo
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    out = tmp_path / "prepared"
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages/prepare.py"), "--params", str(bad), "--out", str(out),
         "--metrics", str(tmp_path / "m.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {bad}: data.synthetic.n_speaker: Key 'n_speaker' not in 'SyntheticConfig'"]
    assert not out.exists() and not (tmp_path / "m.json").exists()
