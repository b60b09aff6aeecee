"""Sharded dataset writer: few size-bounded shards, loadable, never half-written."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from semantic_bridge.data.shards import ShardedWriter, load_split

FEATURES = datasets.Features({"id": datasets.Value("string"),
                              "audio": datasets.List(datasets.Value("float32"))})


def rows(n):
    for i in range(n):
        yield {"id": f"u{i:03d}", "audio": np.full(4000, i, np.float32)}


def test_rolls_over_at_max_size_and_loads_in_order(tmp_path):
    out = tmp_path / "ds"
    with ShardedWriter(out, FEATURES, max_shard_size="64KB", writer_batch_size=4) as w:
        w.write_all(rows(40))
    shards = sorted(p.name for p in out.glob("*.arrow"))
    assert len(shards) > 3
    assert shards[0] == f"data-00000-of-{len(shards):05d}.arrow"
    ds = load_split(out)
    assert ds["id"] == [f"u{i:03d}" for i in range(40)]
    assert float(ds.with_format("numpy")[39]["audio"][0]) == 39.0
    assert isinstance(datasets.load_from_disk(str(out)), datasets.Dataset)


def test_failure_leaves_no_output(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with ShardedWriter(out, FEATURES, max_shard_size="64KB") as w:
            for i, row in enumerate(rows(30)):
                if i == 20:
                    raise RuntimeError("killed")
                w.write(row)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_empty_split_is_loadable(tmp_path):
    with ShardedWriter(tmp_path / "empty", FEATURES):
        pass
    assert len(load_split(tmp_path / "empty")) == 0


def test_identical_rows_give_identical_bytes(tmp_path):
    for name in ("a", "b"):
        with ShardedWriter(tmp_path / name, FEATURES, max_shard_size="64KB") as w:
            w.write_all(rows(12))
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
