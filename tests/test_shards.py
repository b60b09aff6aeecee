"""Sharded dataset writer: few size-bounded shards, loadable, never half-written."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from semantic_bridge.base import shards as S
from semantic_bridge.base.shards import ShardedWriter, load_split

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


FRAME_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "feat": datasets.Array2D((None, 3), "float16"),
    "mask": datasets.List(datasets.Value("bool")),
    "words": datasets.List({"word": datasets.Value("string"), "start": datasets.Value("float32")}),
})


def frame_rows(n):
    for i in range(n):
        t = i % 5  # includes zero-frame rows
        yield {"id": f"u{i:03d}", "feat": np.arange(t * 3, dtype=np.float16).reshape(t, 3) + i,
               "mask": [bool(k % 2) for k in range(t)], "words": [{"word": "w", "start": float(i)}]}


@pytest.mark.parametrize("start, stop", [(0, None), (7, 23), (0, 1), (39, 40), (10, 10), (5, 200)])
def test_iter_rows_streams_any_range_across_shards(tmp_path, start, stop):
    out = tmp_path / "ds"
    with ShardedWriter(out, FRAME_FEATURES, max_shard_size=300, writer_batch_size=3) as w:
        w.write_all(frame_rows(40))
    assert len(list(out.glob("*.arrow"))) > 3 and S.num_rows(out) == 40
    expected = list(frame_rows(40))[start:stop]
    got = list(S.iter_rows(out, start, stop))
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    for g, e in zip(got, expected):
        assert g["feat"].dtype == np.float16 and g["feat"].shape == e["feat"].shape
        np.testing.assert_array_equal(g["feat"], e["feat"])
        np.testing.assert_array_equal(g["mask"], np.array(e["mask"], bool))
        assert g["words"] == e["words"]
    # the same rows as datasets' own (memory-mapped) reader
    ds = load_split(out).with_format("numpy")
    if expected:
        np.testing.assert_array_equal(ds[start]["feat"].astype(np.float16), got[0]["feat"])


def test_write_shard_is_atomic(tmp_path):
    path = tmp_path / "shard.arrow"

    def failing():
        yield from frame_rows(3)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        S.write_shard(path, FRAME_FEATURES, failing())
    assert not path.exists()
    assert S.write_shard(path, FRAME_FEATURES, frame_rows(3)) == 3 and path.exists()
