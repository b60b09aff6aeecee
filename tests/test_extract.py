"""The extraction engine: units, skips, resume after kill -9, torchrun data parallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml

from semantic_bridge.teachers import extract as E
from semantic_bridge.base import shards
from semantic_bridge.base.errors import Skip
from semantic_bridge.base.stage import X86_PINS

from conftest import REPO


class Echo:
    """A stand-in extractor: output = the row's length, rows whose id is in ``bad`` skipped."""

    name = "echo"
    features = datasets.Features({"id": datasets.Value("string"), "n": datasets.Value("int32")})
    input_columns = ["id", "audio"]
    size_column = "seconds"

    def __init__(self, bad=(), tag="a"):
        self.bad, self.tag, self.windows = set(bad), tag, []

    def identity(self):
        return {"tag": self.tag}

    def row_bytes(self, seconds):
        return int(seconds * 1000)

    def process(self, rows):
        self.windows.append(len(rows))
        for row in rows:
            yield Skip("bad", id=row["id"]) if row["id"] in self.bad else {"id": row["id"], "n": len(row["audio"])}


def _corpus(root: Path, n: int) -> Path:
    feats = datasets.Features({"id": datasets.Value("string"), "audio": datasets.List(datasets.Value("float32")),
                               "seconds": datasets.Value("float32")})
    for split, count in (("train", n), ("valid", 3), ("test", 0)):
        with shards.ShardedWriter(root / split, feats, max_shard_size=2000, writer_batch_size=4) as w:
            for i in range(count):
                w.write({"id": f"{split}{i:03d}", "audio": np.zeros(100 + i, np.float32), "seconds": 1.0})
    return root


def test_units_skips_order_and_empty_splits(tmp_path):
    corpus = _corpus(tmp_path / "corpus", 25)
    extractor = Echo(bad={"train004", "valid001"})
    result = E.run_extraction(extractor, corpus, tmp_path / "out", ["train", "valid", "test"], 4500)
    assert result.units == 5 + 1  # train: 25 rows of 1000 B, a unit closes at >= 4500 B; valid: 1; test: 0
    assert result.rows == {"train": 24, "valid": 2, "test": 0}
    assert result.skipped == {"train": {"bad": 1}, "valid": {"bad": 1}, "test": {}}
    train = list(shards.iter_rows(tmp_path / "out" / "train"))
    assert [r["id"] for r in train] == [f"train{i:03d}" for i in range(25) if i != 4]  # input order
    assert [r["n"] for r in train][:4] == [100, 101, 102, 103]
    assert len(list((tmp_path / "out" / "train").glob("*.arrow"))) == 5
    assert shards.num_rows(tmp_path / "out" / "test") == 0
    assert datasets.load_from_disk(str(tmp_path / "out"))["train"].num_rows == 24
    assert not (tmp_path / "out.work").exists()


def test_a_work_dir_from_other_settings_is_discarded(tmp_path):
    corpus = _corpus(tmp_path / "corpus", 10)
    work = tmp_path / "out.work"
    (work / "train").mkdir(parents=True)
    (work / "job.json").write_text(json.dumps({"key": "someone else"}))
    shards.write_shard(work / "train" / "unit-00000.arrow", Echo.features, [{"id": "stale", "n": -1}])
    (work / "train" / "unit-00000.json").write_text(json.dumps({"rows": 1, "skipped": {}}))
    result = E.run_extraction(Echo(), corpus, tmp_path / "out", ["train"], 10**9)
    assert result.resumed_units == 0
    assert [r["id"] for r in shards.iter_rows(tmp_path / "out" / "train")][0] == "train000"


def test_missing_input_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="input split not found"):
        E.run_extraction(Echo(), tmp_path, tmp_path / "out", ["train"], 1000)


# --------------------------------------------------------------------------- real stage, subprocesses
def _env():
    # the kernel pins of every stage, set here too: the killer wrapper imports torch before the
    # stage's own pinning runs, and its units must match the reference's bit for bit
    return {**os.environ, **X86_PINS, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
            "LOGLEVEL": "INFO"}


@pytest.fixture(scope="module")
def stage_setup(tmp_path_factory, factory_raw, prepared_tiny):
    root = tmp_path_factory.mktemp("extract")
    raw = json.loads(json.dumps(factory_raw))
    raw["data"]["max_shard_size"] = "6KB"  # about one utterance per unit: many units
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    return root, params, prepared_tiny / "corpus"


def _wavlm_cmd(params, corpus, out, launcher=(sys.executable,)):
    return [*launcher, str(REPO / "stages/wavlm.py"), "--params", str(params), "--corpus", str(corpus),
            "--out", str(out), "--metrics", str(out) + ".json"]


def _rows(out):
    return {s: list(shards.iter_rows(out / s)) for s in ("train", "valid", "test")}


@pytest.fixture(scope="module")
def reference(stage_setup):
    root, params, corpus = stage_setup
    out = root / "reference"
    subprocess.run(_wavlm_cmd(params, corpus, out), check=True, env=_env(), capture_output=True)
    return out


KILLER = """
import os, runpy, signal, sys
from semantic_bridge.teachers import extract
done = []
original = extract._run_unit

def run_unit(extractor, input_dir, unit, work, progress):
    if len(done) == 2:  # third unit: die with SIGKILL halfway through writing it
        process = extractor.process
        def dying(rows):
            yield from process(rows)
            os.kill(os.getpid(), signal.SIGKILL)
        extractor.process = dying
    original(extractor, input_dir, unit, work, progress)
    done.append(unit)

extract._run_unit = run_unit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_resume_after_kill_9_keeps_finished_units_and_no_partial_output(stage_setup, reference, tmp_path):
    _, params, corpus = stage_setup
    out = tmp_path / "wavlm"
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(killer), *_wavlm_cmd(params, corpus, out, ())[0:]],
                          env=_env(), capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    work = tmp_path / "wavlm.work"
    finished = sorted(work.rglob("unit-*.arrow"))
    assert len(finished) == 2 and len(list(work.rglob("*.json"))) == 3  # 2 units + job.json
    assert list(work.rglob("*.tmp")), "the killed unit should have left a temp file"
    assert not out.exists()  # nothing half-written where DVC looks
    inodes = {p.stat().st_ino for p in finished}

    proc = subprocess.run(_wavlm_cmd(params, corpus, out), env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed, 2 finished units kept" in proc.stderr
    final = {p.stat().st_ino for p in out.rglob("*.arrow")}
    assert inodes <= final  # the finished units were moved into the output, not recomputed
    assert not work.exists() and not list(out.rglob("*.tmp"))
    _assert_same(_rows(out), _rows(reference), exact=True)


def test_torchrun_two_processes_match_one(stage_setup, reference, tmp_path):
    _, params, corpus = stage_setup
    out = tmp_path / "wavlm2"
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    proc = subprocess.run(_wavlm_cmd(params, corpus, out, launcher), env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 1:" in proc.stderr  # both ranks did work
    metrics = json.loads(Path(str(out) + ".json").read_text())
    assert metrics["units"] > 4 and sum(metrics["rows"].values()) == sum(len(v) for v in _rows(reference).values())
    teacher = yaml.safe_load(params.read_text())["teachers"]["wavlm"]
    assert metrics["dim"] == teacher["dim"] and metrics["layer"] == teacher["layer"]
    assert metrics["model_type"] == "wavlm" and "whisper_window_seconds" not in metrics
    _assert_same(_rows(out), _rows(reference), exact=False)


def _assert_same(got, want, exact):
    for split in want:
        assert [r["id"] for r in got[split]] == [r["id"] for r in want[split]]
        for g, w in zip(got[split], want[split]):
            assert g["n_frames"] == w["n_frames"]
            if exact:
                np.testing.assert_array_equal(g["wavlm"], w["wavlm"])
            else:  # other thread counts may change float summation order
                np.testing.assert_allclose(g["wavlm"].astype(np.float32), w["wavlm"].astype(np.float32), atol=2e-3)
