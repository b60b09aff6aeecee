"""Sharded Hugging Face datasets on disk, written as a stream.

Rows go through ``datasets.arrow_writer.ArrowWriter`` into few large Arrow shards
(``max_shard_size`` each), so memory stays flat whatever the corpus size and DVC
hashes a handful of files. The result is the layout ``Dataset.save_to_disk`` makes,
so ``datasets.load_from_disk`` reads it. Everything is written under a temporary
sibling directory and moved into place by ``commit``: an interrupted stage never
leaves a half-written output for DVC to cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Optional

import datasets
from datasets.arrow_writer import ArrowWriter
from datasets.utils.py_utils import convert_file_size_to_int


class ShardedWriter:
    """Write rows of ``features`` into ``directory`` as ``data-XXXXX-of-YYYYY.arrow`` shards.

    Use as a context manager; the directory appears only if the block finishes.
    ``writer_batch_size`` bounds the rows held in memory before they reach disk.
    """

    def __init__(
        self,
        directory: str | Path,
        features: datasets.Features,
        max_shard_size: str | int = "500MB",
        writer_batch_size: int = 32,
    ) -> None:
        self.directory = Path(directory)
        self.features = features
        self.max_bytes = convert_file_size_to_int(max_shard_size)
        self.writer_batch_size = writer_batch_size
        self.tmp = self.directory.with_name(self.directory.name + ".partial")
        self._writer: Optional[ArrowWriter] = None
        self._shards: list[Path] = []
        self.num_rows = 0

    def __enter__(self) -> "ShardedWriter":
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self

    def _open_shard(self) -> ArrowWriter:
        path = self.tmp / f"shard-{len(self._shards):05d}.arrow"
        self._shards.append(path)
        # fingerprint fixed so that identical rows give byte-identical files
        return ArrowWriter(
            features=self.features,
            path=str(path),
            writer_batch_size=self.writer_batch_size,
            fingerprint="0" * 16,
        )

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = self._open_shard()
        self._writer.write(row)
        self.num_rows += 1
        if self._writer._num_bytes >= self.max_bytes:  # counts rows already flushed
            self._writer.finalize()
            self._writer.close()
            self._writer = None

    def write_all(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer = None
        if not self._shards:  # an empty split is still a valid, loadable dataset
            writer = self._open_shard()
            writer.finalize()
            writer.close()
        n = len(self._shards)
        names = []
        digest = hashlib.sha256()
        for i, path in enumerate(self._shards):
            name = f"data-{i:05d}-of-{n:05d}.arrow"
            path.rename(self.tmp / name)
            names.append(name)
            digest.update((self.tmp / name).read_bytes())
        state = {
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": digest.hexdigest()[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        info = {"citation": "", "description": "", "features": self.features.to_dict(),
                "homepage": "", "license": ""}
        (self.tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        (self.tmp / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self._writer is not None:
                self._writer.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self._finish()
        shutil.rmtree(self.directory, ignore_errors=True)
        os.replace(self.tmp, self.directory)


def write_split_index(directory: str | Path, splits: Iterable[str]) -> None:
    """Write ``dataset_dict.json`` so ``load_from_disk(directory)`` returns a DatasetDict."""
    Path(directory, "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))


def load_split(directory: str | Path) -> datasets.Dataset:
    """Memory-mapped view of one split written by ``ShardedWriter``."""
    return datasets.load_from_disk(str(directory))
