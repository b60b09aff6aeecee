"""Sharded Hugging Face datasets on disk, written as a stream.

Rows go through ``datasets.arrow_writer.ArrowWriter`` into few large Arrow shards
(``max_shard_size`` each), so memory stays flat whatever the corpus size and DVC
hashes a handful of files. The result is the layout ``Dataset.save_to_disk`` makes,
so ``datasets.load_from_disk`` reads it. ``ShardedWriter`` builds a split under
``<directory>.partial`` and renames it into place when its block finishes
(``files.staged_output``): an interrupted stage never leaves a half-written output for
DVC to cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import datasets
import numpy as np
import pyarrow as pa
from datasets.arrow_writer import ArrowWriter
from datasets.utils.py_utils import convert_file_size_to_int

from .errors import MissingFile
from .files import atomic_path, staged_output

ROWS_FILE = "rows.json"  # rows per Arrow file, beside state.json
TRAINING_SPLITS = ["train", "valid", "test"]  # what align / wavlm / qwen / merge process


def _arrow_writer(path: Path, features: datasets.Features, writer_batch_size: int) -> ArrowWriter:
    # fingerprint fixed so that identical rows give byte-identical files
    return ArrowWriter(features=features, path=str(path), writer_batch_size=writer_batch_size,
                       fingerprint="0" * 16)


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
        self._staged = staged_output(self.directory)
        self.tmp: Optional[Path] = None
        self._writer: Optional[ArrowWriter] = None
        self._shards: list[Path] = []
        self.num_rows = 0

    def __enter__(self) -> "ShardedWriter":
        self.tmp = self._staged.__enter__()
        return self

    def _open_shard(self) -> ArrowWriter:
        assert self.tmp is not None, "use ShardedWriter as a context manager"
        path = self.tmp / f"shard-{len(self._shards):05d}.arrow"
        self._shards.append(path)
        return _arrow_writer(path, self.features, self.writer_batch_size)

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = self._open_shard()
        self._writer.write(row)
        self.num_rows += 1
        if self._writer._num_bytes >= self.max_bytes:  # counts rows already flushed
            self._close_shard()

    def write_all(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer = None

    def __exit__(self, exc_type, exc, tb) -> Optional[bool]:
        if exc_type is None:
            try:
                self._close_shard()
                if not self._shards:  # an empty split is still a valid, loadable dataset
                    self._writer = self._open_shard()
                    self._close_shard()
                assert self.tmp is not None
                finalize_dir(self.tmp, self._shards, self.features)
            except BaseException as err:
                self._staged.__exit__(type(err), err, err.__traceback__)
                raise
        elif self._writer is not None:
            self._writer.close()
        # renames the folder into place, or deletes it when the block raised
        return self._staged.__exit__(exc_type, exc, tb)


def windows(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``rows`` in lists of ``size`` (the last may be shorter): bounded read-ahead."""
    window: list[Any] = []
    for row in rows:
        window.append(row)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def write_shard(path: str | Path, features: datasets.Features, rows: Iterable[dict[str, Any]],
                writer_batch_size: int = 32) -> int:
    """Write ``rows`` to one Arrow file at ``path``, atomically; returns the row count.
    A crash mid-write leaves only a ``.tmp`` sibling, never ``path``."""
    with atomic_path(path) as tmp:
        writer = _arrow_writer(tmp, features, writer_batch_size)
        try:
            for row in rows:
                writer.write(row)
            n, _ = writer.finalize()
        finally:
            writer.close()
    return n


def finalize_dir(directory: str | Path, shards: list[Path], features: datasets.Features) -> None:
    """Turn Arrow files in ``directory`` into the ``save_to_disk`` layout, in the given order.

    Renames them ``data-XXXXX-of-YYYYY.arrow`` and writes ``state.json``,
    ``dataset_info.json`` and ``rows.json`` (rows per file, so readers can skip whole
    files without opening them).
    """
    directory = Path(directory)
    n = len(shards)
    names, rows = [], {}
    digest = hashlib.sha256()
    for i, path in enumerate(shards):
        name = f"data-{i:05d}-of-{n:05d}.arrow"
        target = directory / name
        if Path(path) != target:
            os.replace(path, target)
        names.append(name)
        with open(target, "rb") as handle:  # hashed in chunks: shards are hundreds of MB
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
        rows[name] = _count_rows(target)
    state = {
        "_data_files": [{"filename": name} for name in names],
        "_fingerprint": digest.hexdigest()[:16],
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    info = {"citation": "", "description": "", "features": features.to_dict(),
            "homepage": "", "license": ""}
    (directory / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    (directory / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    (directory / ROWS_FILE).write_text(json.dumps(rows, indent=2, sort_keys=True))


def _count_rows(path: Path) -> int:
    with pa.OSFile(str(path)) as source:
        return sum(batch.num_rows for batch in pa.ipc.open_stream(source))


# --------------------------------------------------------------------------- reading
def _data_files(directory: Path) -> list[Path]:
    state_path = directory / "state.json"
    if not state_path.is_file():
        raise MissingFile(f"{directory}: not a dataset written by this pipeline (no state.json)")
    state = json.loads(state_path.read_text())
    return [directory / f["filename"] for f in state["_data_files"]]


def read_features(directory: str | Path) -> datasets.Features:
    info = json.loads(Path(directory, "dataset_info.json").read_text())
    return datasets.Features.from_dict(info["features"])


def shard_rows(directory: str | Path) -> list[tuple[Path, int]]:
    """``(file, rows)`` for each Arrow file of a split, in order."""
    directory = Path(directory)
    files = _data_files(directory)
    index_path = directory / ROWS_FILE
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    return [(f, index[f.name] if f.name in index else _count_rows(f)) for f in files]


def num_rows(directory: str | Path) -> int:
    return sum(n for _, n in shard_rows(directory))


def iter_batches(directory: str | Path, start: int = 0, stop: Optional[int] = None,
                 columns: Optional[list[str]] = None) -> Iterator[pa.RecordBatch]:
    """Record batches holding rows ``[start, stop)`` of a split, read as a stream.

    Files are read sequentially, not memory-mapped, so resident memory stays at one
    batch whatever the size of the split; files before ``start`` are skipped unread.
    """
    offset = 0
    for path, n in shard_rows(directory):
        if stop is not None and offset >= stop:
            return
        if offset + n <= start:
            offset += n
            continue
        with pa.OSFile(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                lo, hi = offset, offset + batch.num_rows
                offset = hi
                a, b = max(start, lo), hi if stop is None else min(stop, hi)
                if a >= b:
                    if stop is not None and lo >= stop:
                        break
                    continue
                batch = batch.slice(a - lo, b - a)
                if columns is not None:
                    batch = batch.select(columns)
                yield batch


def iter_rows(directory: str | Path, start: int = 0, stop: Optional[int] = None,
              columns: Optional[list[str]] = None) -> Iterator[dict[str, Any]]:
    """Rows ``[start, stop)`` of a split as dicts; numeric list and array columns come as
    numpy arrays (``audio[N]``, ``wavlm[T, D]``, ``llm_mask[T]``), the rest as Python values."""
    for batch in iter_batches(directory, start, stop, columns):
        converted = {name: _to_rows(batch.column(name)) for name in batch.schema.names}
        for i in range(batch.num_rows):
            yield {name: values[i] for name, values in converted.items()}


def _to_rows(column: pa.Array) -> list[Any]:
    """Per-row values of one column; numeric lists (and lists of them) as numpy arrays."""
    if isinstance(column.type, pa.ExtensionType):  # datasets' Array2D: list<list<value>>
        width = column.type.shape[1]
        storage = column.storage
        outer = storage.offsets.to_numpy()
        inner = storage.values.offsets.to_numpy()
        values = storage.values.values.to_numpy(zero_copy_only=False)
        return [values[inner[outer[i]]:inner[outer[i + 1]]].reshape(-1, width).copy()
                for i in range(len(storage))]
    if pa.types.is_list(column.type) and _is_numeric(column.type.value_type):
        return _numeric_rows(column)
    return column.to_pylist()


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)


def _numeric_rows(column: pa.Array) -> list[np.ndarray]:
    values = column.values.to_numpy(zero_copy_only=False)
    offsets = column.offsets.to_numpy()
    return [values[offsets[i]:offsets[i + 1]].copy() for i in range(len(column))]


def write_split_index(directory: str | Path, splits: Iterable[str]) -> None:
    """Write ``dataset_dict.json`` so ``load_from_disk(directory)`` returns a DatasetDict."""
    Path(directory, "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))


def load_split(directory: str | Path) -> datasets.Dataset:
    """Memory-mapped view of one split written by ``ShardedWriter``."""
    return datasets.load_from_disk(str(directory))
