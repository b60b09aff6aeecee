"""merge: the join by id in corpus order, the frame contract, counted skips."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from semantic_bridge.base import shards
from semantic_bridge.base.errors import DataError
from semantic_bridge.base.schemas import ALIGNED
from semantic_bridge.merge.join import run_merge

D = 4
CORPUS = datasets.Features({"id": datasets.Value("string"), "speaker": datasets.Value("string"),
                            "text": datasets.Value("string"), "audio": datasets.List(datasets.Value("float32")),
                            "sample_rate": datasets.Value("int32")})


def _write(root, name, features, rows_by_split):
    for split in ("train", "valid", "test"):
        with shards.ShardedWriter(root / name / split, features) as w:
            w.write_all(rows_by_split.get(split, []))
    return root / name


def _upstream(tmp_path, n=5, drop_qwen=(), bad_wavlm=(), shuffle_align=False):
    samples = [1920 * 3 + 5 + 5 * i for i in range(n)]  # 4 frames each
    ids = [f"u{i}" for i in range(n)]
    corpus = [{"id": i, "speaker": "s", "text": "hi there", "audio": np.full(s, 0.1, np.float32),
               "sample_rate": 24000} for i, s in zip(ids, samples)]
    aligned = [{"id": i, "text": "hi there", "n_frames": 4, "backend": "given",
                "words": [{"word": "hi", "start": 0.0, "end": 0.1}, {"word": "there", "start": 0.1, "end": 0.2}]}
               for i in ids]
    if shuffle_align:
        aligned = aligned[::-1]
    wavlm = [{"id": i, "n_frames": 4, "wavlm": np.ones((3 if i in bad_wavlm else 4, D), np.float16)} for i in ids]
    qwen = [{"id": i, "n_frames": 4, "llm": np.ones((4, D), np.float16), "llm_mask": [False, True, True, True]}
            for i in ids if i not in drop_qwen]
    feats_w = datasets.Features({"id": datasets.Value("string"), "n_frames": datasets.Value("int32"),
                                 "wavlm": datasets.Array2D((None, D), "float16")})
    feats_q = datasets.Features({"id": datasets.Value("string"), "n_frames": datasets.Value("int32"),
                                 "llm": datasets.Array2D((None, D), "float16"),
                                 "llm_mask": datasets.List(datasets.Value("bool"))})
    return (_write(tmp_path, "corpus", CORPUS, {"train": corpus}),
            _write(tmp_path, "aligned", ALIGNED, {"train": aligned}),
            _write(tmp_path, "wavlm", feats_w, {"train": wavlm}),
            _write(tmp_path, "qwen", feats_q, {"train": qwen}))


def test_join_with_counted_skips(tmp_path):
    inputs = _upstream(tmp_path, drop_qwen={"u1"}, bad_wavlm={"u3"})
    result = run_merge(*inputs, tmp_path / "merged", "500MB")
    assert result.rows == {"train": 3, "valid": 0, "test": 0}
    assert result.skipped["train"] == {"missing_qwen": 1, "frames_wavlm": 1}
    assert result.llm_masked_fraction["train"] == 0.25
    ds = datasets.load_from_disk(str(tmp_path / "merged"))
    train = ds["train"].with_format("numpy")
    assert list(train["id"]) == ["u0", "u2", "u4"]
    need = {"id", "audio", "n_frames", "wavlm", "llm", "llm_mask", "speaker", "text", "words"}
    assert need <= set(ds["train"].column_names)
    row = train[0]
    assert row["wavlm"].shape == (4, D) and row["llm"].shape == (4, D) and row["n_frames"] == 4
    assert ds["valid"].num_rows == 0
    metrics = result.metrics("embedded")
    assert metrics["skipped_total"] == 2 and metrics["scale"] == "embedded"


def test_rows_out_of_corpus_order_are_a_contract_error(tmp_path):
    inputs = _upstream(tmp_path, shuffle_align=True)
    with pytest.raises(DataError, match="out of corpus order"):
        run_merge(*inputs, tmp_path / "merged", "500MB")
    assert not (tmp_path / "merged").exists()
